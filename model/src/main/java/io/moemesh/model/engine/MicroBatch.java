package io.moemesh.model.engine;

/**
 * One micro-batch of a step ({@link MicroBatching}): a contiguous run of the step's sequences with its own
 * activations and scratch, so that its expert call can be in flight while the engine computes another
 * micro-batch's layer. Reused across steps (its buffers grow to the largest micro-batch seen). Engine thread only.
 */
final class MicroBatch {
    final StepBuffers buf = new StepBuffers();
    /** The rows of this micro-batch with a remote prefix (row numbers local to {@link #ctx}). */
    final RemoteAttentionBatch remote;
    /** The micro-batch's own context (the step's when it is the only one): what the dispatch and the cache see. */
    StepContext ctx;
    /** Index in the step's batch of its first sequence; its first row among the step's rows; its row count. */
    int firstSeq;
    int firstRow;
    int rows;
    boolean remoteRows;
    /** Its current layer's expert call, between start and await; null otherwise. */
    ExpertDispatch.Pending pending;
    /** When {@link #pending} was started (after start returned). */
    long sentAt;

    MicroBatch(int heads, int headDim) {
        this.remote = new RemoteAttentionBatch(heads, headDim);
    }
}
