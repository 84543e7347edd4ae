package io.moemesh.kvcache.tier;

/**
 * A snapshot of a {@link TieredKvStore}: each tier's counters and the moves between them (cumulative).
 *
 * @param dram           the DRAM tier
 * @param lower          the tier under it (SSD or CSD)
 * @param demotions      blocks evicted from DRAM and stored in the lower tier
 * @param demotionDrops  blocks evicted from DRAM that the lower tier could not take (full of pinned blocks, or an
 *                       I/O error): forgotten
 * @param promotions     blocks moved up to DRAM by a hit in the lower tier
 * @param declined       puts the admission policy declined
 */
public record StoreStats(TierStats dram, TierStats lower, long demotions, long demotionDrops, long promotions,
                         long declined) {
    /** Bytes stored in all tiers: each block counts once, in the one tier that holds it. */
    public long usedBytes() {
        return dram.usedBytes() + lower.usedBytes();
    }
}
