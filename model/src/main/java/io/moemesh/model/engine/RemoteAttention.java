package io.moemesh.model.engine;

/**
 * Where the engine gets the attention of a step's rows over the remote prefixes of their sequences: positions
 * [0, R) whose keys and values the {@link KvCache} does not hold ({@link KvCache#remotePrefix}), because the
 * kvcache-service keeps them and computes their attention next to the data (InstInfer, Pan et al. 2024; the
 * split-K of flash-decoding, Dao et al. 2023). Per query row and head, the implementation returns the partial
 * over [0, R): the output normalised within those positions and the natural-log log-sum-exp of their scaled
 * scores, exactly {@code kvcache.v1}'s {@code AttendResponse}. The engine computes the partial over [R, pos]
 * from its own cache and merges the two exactly (the log-sum-exp merge of {@code AttendRequest}'s comment), so
 * the step's result does not depend on where the prefix lives.
 *
 * <p>Threading and overlap: both methods are called on the thread that runs {@link Engine#step}, once per layer
 * per step (per micro-batch of the step with {@link MicroBatching}, one batch at a time) and only for layers of steps that have rows with a remote prefix (a step without any never calls
 * them), in this order: {@link #start} with the layer's queries, then the engine computes the local partial (on
 * the kernel threads and its own), then {@link #await}. An implementation that calls a service sends the request
 * in {@code start} and returns; the round trip overlaps the local attention, and {@code await} blocks for what is
 * left. The engine stalls in {@code await}, and every layer of every such step waits there, so an implementation
 * must be fast (one batched call per layer, a deadline well under a step's time) and must not call the engine.
 *
 * <p>Failure: an exception from either method fails the step with a {@link RemoteAttentionException} (the cause
 * kept), as an expert dispatch failure fails it: the cache is not told the step completed and the scheduler ends
 * its sequences with the error, as it does for an expert failure. An implementation that knows whose partial failed
 * (one sequence's call failed, the others' answered) throws a {@link RemoteAttentionException} naming those
 * sequences ({@link RemoteAttentionException#sequences}): the scheduler then ends only them and runs the step again
 * without them, so one sequence's failure is not every batched request's. When the step fails between {@code
 * start} and {@code await} (the local attention threw), {@code await} is not called; the next {@code start}
 * supersedes the abandoned batch.
 */
public interface RemoteAttention {

    /** No remote prefixes: a cache that reports one fails the step (the engine has nowhere to get its partial). */
    RemoteAttention NONE = new RemoteAttention() {
        @Override
        public void start(RemoteAttentionBatch batch) {
            throw new IllegalStateException("the engine has no remote attention");
        }

        @Override
        public void await(RemoteAttentionBatch batch) {
            throw new IllegalStateException("the engine has no remote attention");
        }
    };

    /**
     * Begins computing the partials of the batch's rows (its queries stay valid and unchanged until {@link
     * #await} returns). May compute them right here, or send a request and return.
     */
    void start(RemoteAttentionBatch batch);

    /**
     * Returns once {@link RemoteAttentionBatch#output()} and {@link RemoteAttentionBatch#lse()} hold every row's
     * partial over [0, R) of its sequence. Blocks, with a deadline, for a call in flight.
     */
    void await(RemoteAttentionBatch batch);
}
