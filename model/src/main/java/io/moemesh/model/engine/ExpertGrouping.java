package io.moemesh.model.engine;

import java.util.Arrays;

/**
 * Groups a step's (token, expert) pairs by expert, so each expert's tokens become one GEMM (as vLLM's
 * fused-MoE "moe_align" step does). Reused across layers and steps: no allocation once warmed up.
 */
public final class ExpertGrouping {
    private int[] counts = new int[0];
    private int[] starts = new int[0];
    /** Pair indices (t·P + j) ordered by expert. */
    private int[] order = new int[0];
    private int[] fill = new int[0];

    /** Groups {@code tokens · pairsPerToken} pairs over experts [0, numExperts). */
    public void group(int[] experts, int tokens, int pairsPerToken, int numExperts) {
        int pairs = tokens * pairsPerToken;
        if (counts.length < numExperts + 1) {
            counts = new int[numExperts + 1];
            starts = new int[numExperts + 1];
            fill = new int[numExperts + 1];
        }
        if (order.length < pairs) {
            order = new int[pairs];
        }
        Arrays.fill(counts, 0, numExperts + 1, 0);
        for (int i = 0; i < pairs; i++) {
            counts[experts[i]]++;
        }
        starts[0] = 0;
        for (int e = 0; e < numExperts; e++) {
            starts[e + 1] = starts[e] + counts[e];
        }
        System.arraycopy(starts, 0, fill, 0, numExperts);
        for (int i = 0; i < pairs; i++) {
            order[fill[experts[i]]++] = i;
        }
    }

    public int count(int expert) {
        return counts[expert];
    }

    public int start(int expert) {
        return starts[expert];
    }

    /** The pair index at position {@code i} of the grouped order. */
    public int pair(int i) {
        return order[i];
    }
}
