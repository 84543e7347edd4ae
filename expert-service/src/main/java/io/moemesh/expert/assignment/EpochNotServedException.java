package io.moemesh.expert.assignment;

/**
 * A request routed under a placement epoch this instance does not serve (FAILED_PRECONDITION): older than the
 * oldest it still serves ({@link #stale()}: the caller must move to a newer placement), or newer than its
 * latest LoadAssignment (the caller is ahead: the instance has not been given that epoch yet).
 */
public final class EpochNotServedException extends IllegalStateException {
    private final long requestEpoch;
    private final long servingEpoch;

    public EpochNotServedException(long requestEpoch, long servingEpoch) {
        super(Long.compareUnsigned(requestEpoch, servingEpoch) < 0
                ? "stale epoch " + Long.toUnsignedString(requestEpoch) + ", serving " + servingEpoch
                : "epoch " + Long.toUnsignedString(requestEpoch) + " is not loaded yet, serving " + servingEpoch);
        this.requestEpoch = requestEpoch;
        this.servingEpoch = servingEpoch;
    }

    public boolean stale() {
        return Long.compareUnsigned(requestEpoch, servingEpoch) < 0;
    }

    public long requestEpoch() {
        return requestEpoch;
    }

    public long servingEpoch() {
        return servingEpoch;
    }
}
