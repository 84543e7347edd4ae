package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.attend.PartialAttention;
import io.moemesh.kvcache.attend.StreamingAttention;
import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.policy.AccessHint;
import java.util.List;

/**
 * A computational-storage tier: an {@link SsdTier} (same files, same guarantees) that can also compute attention
 * over a sequence's stored blocks where they lie and return only the per-head partial outputs and log-sum-exps
 * (InstInfer's in-storage attention; the gateway merges them with its own partials over its hot blocks, as
 * flash-decoding merges split-K partials). Here the "device" is the storage process: K/V are read (CRC-checked)
 * from the segment files and never cross the network.
 */
public final class CsdTier extends ForwardingKvTier {
    private final SsdTier ssd;

    public CsdTier(SsdTier ssd) {
        super(ssd);
        this.ssd = ssd;
    }

    /** The SSD tier underneath (its open report, compaction, disk bytes). */
    public SsdTier ssd() {
        return ssd;
    }

    /**
     * Attention of one query token over the stored blocks {@code chain} (consecutive blocks of one sequence, in
     * order) at {@code layer}, over their first {@code validPositions} positions. Reading a block counts as a hit
     * in this tier.
     *
     * @throws BlockNotFoundException   naming the first block that is not stored (or failed its CRC32C)
     * @throws IllegalArgumentException naming the field when a shape or value does not fit
     */
    public PartialAttention attend(float[] query, int numHeads, List<BlockKey> chain, int layer, int validPositions,
                                   float scale) {
        KvLayout layout = ssd.layout();
        if ((long) validPositions > (long) chain.size() * layout.blockTokens() || validPositions < 0) {
            throw new IllegalArgumentException("validPositions must be in [0, "
                    + (long) chain.size() * layout.blockTokens() + "] for " + chain.size() + " blocks, got "
                    + validPositions);
        }
        StreamingAttention attention = new StreamingAttention(query, numHeads, layout, layer,
                new int[] {validPositions}, scale);
        // One block read at a time: a block holds every layer, attention reads one.
        int used = (validPositions + layout.blockTokens() - 1) / layout.blockTokens();
        for (int i = 0; i < used; i++) {
            BlockKey k = chain.get(i);
            attention.add(ssd.get(k, AccessHint.atChainPosition(i)).orElseThrow(() -> new BlockNotFoundException(k)));
        }
        return attention.result(0);
    }

    @Override
    public TierKind kind() {
        return TierKind.CSD;
    }
}
