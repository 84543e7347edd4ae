package io.moemesh.kvcache.attend;

import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
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
 * The pass is {@link StreamingAttention}'s, which takes the blocks one at a time (what the service's Attend uses).
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
        if (validPositions < 0 || (long) validPositions > (long) blocks.size() * layout.blockTokens()) {
            throw new IllegalArgumentException("validPositions must be in [0, " + (long) blocks.size()
                    * layout.blockTokens() + "] for " + blocks.size() + " blocks, got " + validPositions);
        }
        StreamingAttention attention = new StreamingAttention(query, numHeads, layout, layer,
                new int[] {validPositions}, scale);
        for (KvBlock b : blocks) {
            if (!b.layout().equals(layout)) {
                throw new IllegalArgumentException("block " + b.key() + " has " + b.layout() + ", not " + layout);
            }
        }
        int used = (validPositions + layout.blockTokens() - 1) / layout.blockTokens();
        for (int i = 0; i < used; i++) {
            attention.add(blocks.get(i));
        }
        return attention.result(0);
    }
}
