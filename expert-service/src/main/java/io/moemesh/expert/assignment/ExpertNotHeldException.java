package io.moemesh.expert.assignment;

/** An ExpertBatch names an expert this instance is not assigned for the request's epoch (FAILED_PRECONDITION). */
public final class ExpertNotHeldException extends IllegalStateException {
    private final int layer;
    private final int expert;
    private final long servingEpoch;

    public ExpertNotHeldException(String instanceId, int layer, int expert, long checkedEpoch, long servingEpoch) {
        super("layer " + layer + " expert " + expert + " is not held by " + instanceId + " (epoch " + checkedEpoch + ")");
        this.layer = layer;
        this.expert = expert;
        this.servingEpoch = servingEpoch;
    }

    public int layer() {
        return layer;
    }

    public int expert() {
        return expert;
    }

    public long servingEpoch() {
        return servingEpoch;
    }
}
