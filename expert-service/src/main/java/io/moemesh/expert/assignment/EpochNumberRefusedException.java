package io.moemesh.expert.assignment;

/**
 * A LoadAssignment refused for its epoch's NUMBER alone (FAILED_PRECONDITION): older than the served or the prepared
 * epoch, too far past the served one, not below 2^63 while none is served, or a number already held with other
 * experts. Every instance holding the same epochs would answer alike, so it says nothing of this instance: the
 * placer fixes it by its choice of number. Its own type (the grpc package marks its status with the ErrorInfo reason
 * EPOCH_NUMBER_REFUSED) lets the router tell it from a refusal about the instance itself (an assignment for another
 * instance) without reading the message, which stays free to change.
 */
public final class EpochNumberRefusedException extends IllegalStateException {
    private final long epoch;
    private final long servedEpoch;
    private final long preparedEpoch;

    /**
     * @param epoch         the refused epoch
     * @param servedEpoch   the epoch served when it was refused (0 = none)
     * @param preparedEpoch the epoch prepared when it was refused (0 = none)
     */
    public EpochNumberRefusedException(String message, long epoch, long servedEpoch, long preparedEpoch) {
        super(message);
        this.epoch = epoch;
        this.servedEpoch = servedEpoch;
        this.preparedEpoch = preparedEpoch;
    }

    public long epoch() {
        return epoch;
    }

    public long servedEpoch() {
        return servedEpoch;
    }

    /** 0 = none. */
    public long preparedEpoch() {
        return preparedEpoch;
    }
}
