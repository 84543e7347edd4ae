package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.policy.BlockHistory;

/**
 * Where a live record of an {@link SsdTier} is, and its history in that tier. Fields other than the location: under
 * the tier's index lock.
 */
final class IndexEntry {
    final Segment segment;
    final long offset;
    /** The record's CRC32C (its header's), for {@link SsdTier#locate}. */
    final int crc;
    BlockHistory history;
    boolean pinned;

    IndexEntry(Segment segment, long offset, int crc, BlockHistory history, boolean pinned) {
        this.segment = segment;
        this.offset = offset;
        this.crc = crc;
        this.history = history;
        this.pinned = pinned;
    }

    /** The same record (CRC, history, pin) at its copy {@code offset} in {@code to} (compaction). */
    IndexEntry movedTo(Segment to, long offset) {
        return new IndexEntry(to, offset, crc, history, pinned);
    }
}
