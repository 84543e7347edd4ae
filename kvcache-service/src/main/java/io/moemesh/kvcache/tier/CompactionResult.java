package io.moemesh.kvcache.tier;

/**
 * What one {@link SsdTier#compact()} did.
 *
 * @param segmentsCompacted sealed segments rewritten and deleted
 * @param recordsMoved      live records copied into new segments
 * @param bytesReclaimed    file bytes freed (the deleted segments' sizes minus the bytes copied)
 */
public record CompactionResult(int segmentsCompacted, long recordsMoved, long bytesReclaimed) {
}
