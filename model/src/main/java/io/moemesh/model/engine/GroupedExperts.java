package io.moemesh.model.engine;

import io.moemesh.model.kernel.VectorOps;
import java.util.Arrays;

/**
 * The grouped-expert loop, the one both the reference engine ({@link LocalExperts}) and the expert-service's
 * CPU backend run, so that their results are identical by construction: the (token, expert) pairs grouped by
 * expert in a stable order (vLLM's fused-MoE "moe_align" step), each expert's tokens gathered into one
 * [n, hidden] block, one SwiGLU GEMM chain per expert, and the weighted results scattered back into their tokens'
 * rows, experts in ascending order. Scratch buffers are reused: not thread-safe, one instance per thread.
 */
public final class GroupedExperts {
    /** The weights of the experts a batch uses. */
    @FunctionalInterface
    public interface Weights {
        ExpertWeights of(int layer, int expert);
    }

    private final int hidden;
    private final int dispatchable;
    private final ExpertGrouping grouping = new ExpertGrouping();
    private final ExpertFfn ffn = new ExpertFfn();
    private int[] pairTokens = new int[0];
    private float[] gathered = new float[0];
    private float[] result = new float[0];

    /** @param dispatchable routed plus shared experts per layer (expert ids are below it) */
    public GroupedExperts(int hidden, int dispatchable) {
        this.hidden = hidden;
        this.dispatchable = dispatchable;
    }

    /** The pair → token map to fill before {@link #compute} (grown to {@code pairs} as needed). */
    public int[] pairTokens(int pairs) {
        if (pairTokens.length < pairs) {
            pairTokens = new int[pairs];
        }
        return pairTokens;
    }

    /**
     * {@code out[t] = Σ_{p : pairTokens[p] = t} weights[p] · FFN_{experts[p]}(x[t])} for every token row
     * {@code t < tokens}; a token without pairs gets a zero row; {@code out} ([tokens, hidden]) is overwritten.
     * {@code pairTokens} is the array {@link #pairTokens(int)} returned, filled for pairs [0, pairs).
     */
    public void compute(int layer, float[] x, int tokens, int[] experts, float[] weights, int pairs,
                        int[] pairTokens, Weights source, float[] out) {
        Arrays.fill(out, 0, tokens * hidden, 0f);
        // One "token" per pair: a stable per-expert order over pair indices.
        grouping.group(experts, pairs, 1, dispatchable);
        for (int e = 0; e < dispatchable; e++) {
            int n = grouping.count(e);
            if (n == 0) {
                continue;
            }
            ExpertWeights w = source.of(layer, e);
            if (gathered.length < n * hidden) {
                gathered = new float[n * hidden];
                result = new float[n * hidden];
            }
            int start = grouping.start(e);
            for (int i = 0; i < n; i++) {
                System.arraycopy(x, pairTokens[grouping.pair(start + i)] * hidden, gathered, i * hidden, hidden);
            }
            ffn.apply(w, gathered, n, result);
            for (int i = 0; i < n; i++) {
                int pair = grouping.pair(start + i);
                VectorOps.axpy(weights[pair], result, i * hidden, out, pairTokens[pair] * hidden, hidden);
            }
        }
    }
}
