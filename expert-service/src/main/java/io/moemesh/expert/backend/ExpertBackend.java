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
     * True when {@link #compute} neither blocks nor waits for other threads and costs about one pass over the
     * batch, so a small batch may run on the transport thread that read it (BatchProcessor's inline rule).
     * False by default: the CPU backend's kernels fan out to helper threads and wait for them.
     */
    default boolean computesInline() {
        return false;
    }
}
