package io.moemesh.kvcache.policy;

import io.moemesh.kvcache.block.BlockKey;

/**
 * A resident block's access history in one tier, as an eviction policy sees it. Times are the tier's clock
 * (nanoseconds of {@code System.nanoTime} by default; a trace replay sets the trace's clock), so a policy can weigh
 * recency, frequency and age; Belady's MIN is the yardstick (see {@link BeladyOracle}).
 *
 * @param key           the block
 * @param sizeBytes     bytes it occupies in the tier
 * @param accessCount   puts and hits since it entered the tier (≥ 1)
 * @param firstAccess   clock value when it entered the tier
 * @param lastAccess    clock value of its latest put or hit
 * @param chainPosition its latest known position in a chain ({@link AccessHint#chainPosition}), −1 if never told
 */
public record BlockHistory(BlockKey key, long sizeBytes, long accessCount, long firstAccess, long lastAccess,
                           int chainPosition) {
    /** The history after one more access at {@code now} (keeps a known chain position when the hint has none). */
    public BlockHistory accessed(long now, AccessHint hint) {
        return new BlockHistory(key, sizeBytes, accessCount + 1, firstAccess, now,
                hint.chainPosition() >= 0 ? hint.chainPosition() : chainPosition);
    }

    /** The history of a block entering a tier at {@code now}. */
    public static BlockHistory inserted(BlockKey key, long sizeBytes, long now, AccessHint hint) {
        return new BlockHistory(key, sizeBytes, 1, now, now, hint.chainPosition());
    }
}
