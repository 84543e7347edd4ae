package io.moemesh.expert.backend;

import io.moemesh.model.engine.ExpertKey;

/**
 * Computes batches of expert FFNs on one device: the CPU (Vector API kernels of model/) by default; a GPU
 * backend plugs in behind the same two calls. Implementations must allow concurrent {@link #compute} calls from
 * several worker threads.
 */
public interface ExpertBackend {

    /** Name as configured ({@code moemesh.expert.backend}) and reported by DescribeInstance. */
    String name();

    /** Makes an expert compute-ready (in memory, pages faulted in); its size counts against the budget. */
    LoadedExpert load(ExpertKey key);

    /**
     * {@code out[t] = Σ_{pairs i of t} weights[i] · FFN_{experts[i]}(x[t])} for every token, float32; a token
     * without pairs gets a zero row. {@code out} ([tokens, hidden]) is overwritten.
     */
    void compute(BatchInput batch, ExpertLookup experts, float[] out);

    /**
     * The largest batch (tokens) this backend computes on the transport thread that read it, instead of handing it
     * to a compute worker (BatchProcessor's inline rule, further capped by {@code moemesh.expert.inline-max-tokens},
     * and to that many tokens' routed pairs):
     * only a backend whose {@link #compute} never blocks on I/O or a lock, and whose time for such a batch is
     * bounded, may return more than 0. Default 0: always a worker.
     */
    default int inlineMaxTokens() {
        return 0;
    }

    /**
     * Called when the last batch in flight has been computed: nothing follows until a new message arrives (at
     * the earliest after the gateway's next layer). A backend with threads waiting for work lets them sleep.
     */
    default void idle() {
    }
}
