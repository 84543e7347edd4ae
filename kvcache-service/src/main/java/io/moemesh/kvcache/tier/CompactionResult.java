package io.moemesh.kvcache.tier;

/**
 * What one {@link SsdTier#compact()} did.
 *
 * @param segmentsCompacted sealed segments rewritten and deleted (or, while a {@code Locate} lease names one, kept
 *                          until the lease ends: {@link SsdTier#releaseExpiredLeases()})
 * @param recordsMoved      live records copied into new segments (with those of a victim a stopped run left
 *                          half-copied: {@link SsdTier#compact(java.util.function.BooleanSupplier)})
 * @param bytesReclaimed    file bytes freed now (the deleted segments' sizes, their tombstone files included, minus
 *                          the bytes copied; a segment kept for a lease counts when it is unlinked, not here;
 *                          negative when a stopped run copied more than it freed)
 */
public record CompactionResult(int segmentsCompacted, long recordsMoved, long bytesReclaimed) {
}
