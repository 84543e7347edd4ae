package io.moemesh.kvcache.attend;

import java.util.Arrays;
import java.util.List;

/**
 * Attention of one query token over a subset of its key positions, in the form that merges exactly (the split-K
 * of flash-decoding, Dao et al. 2023, and the partial results InstInfer's computational storage returns): per
 * query head {@code h}, the output normalised within the subset and the natural-log log-sum-exp of its scaled
 * scores, {@code lse[h] = log Σ_j exp(s_j)}. A head with no visible key has a zero output and {@code lse = −∞},
 * so it drops out of a merge.
 *
 * @param numHeads query heads
 * @param headDim  dimensions per head
 * @param output   [numHeads][headDim] row-major
 * @param lse      [numHeads]
 */
public record PartialAttention(int numHeads, int headDim, float[] output, float[] lse) {
    public PartialAttention {
        if (numHeads <= 0 || headDim <= 0) {
            throw new IllegalArgumentException("numHeads and headDim must be positive, got " + numHeads + ", "
                    + headDim);
        }
        if (output.length != numHeads * headDim || lse.length != numHeads) {
            throw new IllegalArgumentException("output must have numHeads · headDim = " + numHeads * headDim
                    + " floats and lse " + numHeads + ", got " + output.length + " and " + lse.length);
        }
    }

    /** The partial of an empty subset: zero outputs, lse −∞ (the identity of {@link #merge}). */
    public static PartialAttention empty(int numHeads, int headDim) {
        float[] lse = new float[numHeads];
        Arrays.fill(lse, Float.NEGATIVE_INFINITY);
        return new PartialAttention(numHeads, headDim, new float[numHeads * headDim], lse);
    }

    /**
     * Combines partials over disjoint subsets of positions into the partial over their union, exactly (up to
     * rounding): per head, with {@code m = max_p lse_p} and {@code w_p = exp(lse_p − m)},
     * {@code out = Σ_p w_p · out_p / Σ_p w_p} and {@code lse = m + log Σ_p w_p} — the merge in
     * {@code kvcache.v1}'s AttendRequest comment.
     *
     * @throws IllegalArgumentException when the list is empty or the shapes differ
     */
    public static PartialAttention merge(List<PartialAttention> parts) {
        if (parts.isEmpty()) {
            throw new IllegalArgumentException("merge needs at least one partial");
        }
        int heads = parts.getFirst().numHeads;
        int dim = parts.getFirst().headDim;
        for (PartialAttention p : parts) {
            if (p.numHeads != heads || p.headDim != dim) {
                throw new IllegalArgumentException("partials of shapes [" + heads + ", " + dim + "] and ["
                        + p.numHeads + ", " + p.headDim + "] cannot be merged");
            }
        }
        float[] out = new float[heads * dim];
        float[] lse = new float[heads];
        double[] acc = new double[dim];
        for (int h = 0; h < heads; h++) {
            double m = Double.NEGATIVE_INFINITY;
            for (PartialAttention p : parts) {
                m = Math.max(m, p.lse[h]);
            }
            if (m == Double.NEGATIVE_INFINITY) {
                lse[h] = Float.NEGATIVE_INFINITY;
                continue;
            }
            Arrays.fill(acc, 0);
            double sum = 0;
            for (PartialAttention p : parts) {
                if (p.lse[h] == Float.NEGATIVE_INFINITY) {
                    continue;
                }
                double w = Math.exp(p.lse[h] - m);
                sum += w;
                for (int d = 0; d < dim; d++) {
                    acc[d] += w * p.output[h * dim + d];
                }
            }
            for (int d = 0; d < dim; d++) {
                out[h * dim + d] = (float) (acc[d] / sum);
            }
            lse[h] = (float) (m + Math.log(sum));
        }
        return new PartialAttention(heads, dim, out, lse);
    }
}
