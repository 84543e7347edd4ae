package io.moemesh.kvcache.attend;

import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import java.nio.FloatBuffer;
import java.util.List;

/**
 * Scaled dot-product attention of one query token over stored blocks at one layer, returning the mergeable
 * {@link PartialAttention} (the CSD tier's Attend; InstInfer, Pan et al. 2024, runs this next to the flash so that
 * K/V never cross the PCIe bus or the network, only the query and the per-head partials do).
 *
 * <p>For query head {@code h} and KV head {@code g = h / (numHeads / kvHeads)} (grouped-query attention), over
 * the visible positions {@code j} of the blocks in order (position j is token {@code j % B} of block {@code j / B}):
 * {@code s_j = scale · q[h] · k[g, j]}, {@code lse[h] = log Σ_j exp(s_j)},
 * {@code out[h] = Σ_j exp(s_j − lse[h]) · v[g, j]}. Computed in one pass with a running maximum (online softmax)
 * in double, so the result does not depend on how the positions are later split and merged beyond float rounding.
 */
public final class BlockAttention {
    private BlockAttention() {
    }

    /** The model's usual softmax scale, {@code 1 / sqrt(headDim)}. */
    public static float defaultScale(int headDim) {
        return (float) (1.0 / Math.sqrt(headDim));
    }

    /**
     * @param query          [numHeads][headDim] row-major, post-RoPE
     * @param numHeads       query heads: a positive multiple of the layout's kvHeads
     * @param blocks         consecutive blocks of one chain, in order (all of {@code layout})
     * @param layer          the layer whose K/V are used
     * @param validPositions how many leading positions of the blocks are visible ([0, blocks · B]; the causal
     *                       mask and a partly filled last block)
     * @param scale          softmax scale (finite, positive)
     * @throws IllegalArgumentException naming the field when a shape or value does not fit
     */
    public static PartialAttention attend(float[] query, int numHeads, List<KvBlock> blocks, KvLayout layout,
                                          int layer, int validPositions, float scale) {
        int dim = layout.headDim();
        int kvHeads = layout.kvHeads();
        int bt = layout.blockTokens();
        if (numHeads <= 0 || numHeads % kvHeads != 0) {
            throw new IllegalArgumentException("numHeads must be a positive multiple of kvHeads " + kvHeads + ", got "
                    + numHeads);
        }
        if (query.length != numHeads * dim) {
            throw new IllegalArgumentException("query must have numHeads · headDim = " + numHeads * dim
                    + " floats, got " + query.length);
        }
        if (layer < 0 || layer >= layout.layers()) {
            throw new IllegalArgumentException("layer must be in [0, " + layout.layers() + "), got " + layer);
        }
        if (validPositions < 0 || (long) validPositions > (long) blocks.size() * bt) {
            throw new IllegalArgumentException("validPositions must be in [0, " + (long) blocks.size() * bt
                    + "] for " + blocks.size() + " blocks, got " + validPositions);
        }
        if (!(scale > 0) || !Float.isFinite(scale)) {
            throw new IllegalArgumentException("scale must be finite and positive, got " + scale);
        }
        for (KvBlock b : blocks) {
            if (!b.layout().equals(layout)) {
                throw new IllegalArgumentException("block " + b.key() + " has " + b.layout() + ", not " + layout);
            }
        }
        int group = numHeads / kvHeads;
        int used = (validPositions + bt - 1) / bt;
        FloatBuffer[] keys = new FloatBuffer[used];
        FloatBuffer[] values = new FloatBuffer[used];
        for (int i = 0; i < used; i++) {
            keys[i] = blocks.get(i).tensor(layer, false);
            values[i] = blocks.get(i).tensor(layer, true);
        }
        PartialAttention result = PartialAttention.empty(numHeads, dim);
        double[] acc = new double[dim];
        for (int h = 0; h < numHeads; h++) {
            if (validPositions == 0) {
                break;
            }
            int g = h / group;
            int q0 = h * dim;
            double max = Double.NEGATIVE_INFINITY;
            double sum = 0;
            java.util.Arrays.fill(acc, 0);
            for (int j = 0; j < validPositions; j++) {
                int base = (g * bt + j % bt) * dim;
                FloatBuffer k = keys[j / bt];
                double s = 0;
                for (int d = 0; d < dim; d++) {
                    s += (double) query[q0 + d] * k.get(base + d);
                }
                s *= scale;
                // Online softmax: rescale what was summed when a new maximum appears (flash-attention).
                if (s > max) {
                    double c = Math.exp(max - s);
                    sum *= c;
                    for (int d = 0; d < dim; d++) {
                        acc[d] *= c;
                    }
                    max = s;
                }
                double w = Math.exp(s - max);
                sum += w;
                FloatBuffer v = values[j / bt];
                for (int d = 0; d < dim; d++) {
                    acc[d] += w * v.get(base + d);
                }
            }
            for (int d = 0; d < dim; d++) {
                result.output()[q0 + d] = (float) (acc[d] / sum);
            }
            result.lse()[h] = (float) (max + Math.log(sum));
        }
        return result;
    }
}
