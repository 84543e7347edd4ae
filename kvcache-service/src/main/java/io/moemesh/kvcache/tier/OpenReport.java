package io.moemesh.kvcache.tier;

import java.nio.file.Path;
import java.util.List;

/**
 * What rebuilding the SSD index from the segment files found.
 *
 * @param segments            segment files indexed
 * @param blocks              blocks indexed (live)
 * @param checksumFailures    whole records whose magic, length or CRC32C did not match: dropped
 * @param duplicateRecords    older copies of a key also found in a later segment (dead space; compaction left them)
 * @param tornBytesTruncated  bytes of partial records cut off segment tails (a crash during an append)
 * @param quarantined         segment files whose header was not intact, renamed to {@code *.corrupt} and skipped
 * @param tombstonedRecords   records their segment's tombstones name ({@link DeadLog}: evicted, removed, dropped or
 *                            moved out before the restart): dead space, not indexed
 * @param retiredSegments     segments compaction had retired (kept for a lease, or a crash before their delete):
 *                            deleted
 */
public record OpenReport(int segments, long blocks, long checksumFailures, long duplicateRecords,
                         long tornBytesTruncated, List<Path> quarantined, long tombstonedRecords,
                         int retiredSegments) {
    public OpenReport {
        quarantined = List.copyOf(quarantined);
    }
}
