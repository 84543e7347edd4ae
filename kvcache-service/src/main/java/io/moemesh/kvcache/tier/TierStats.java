package io.moemesh.kvcache.tier;

/**
 * A snapshot of one tier's counters (cumulative since it opened, except the gauges {@code blocks},
 * {@code usedBytes}, {@code capacityBytes}).
 *
 * @param hits              gets that returned a block
 * @param misses            gets that returned nothing (including blocks dropped for a checksum failure)
 * @param bytesRead         payload bytes read to serve hits (from memory or from files)
 * @param bytesWritten      payload bytes written by puts (and, for SSD, by compaction)
 * @param evictions         blocks the tier gave up to make room (demotions included)
 * @param checksumFailures  records whose CRC32C did not match, on read or when the index was rebuilt (SSD)
 * @param blocks            blocks resident now
 * @param usedBytes         bytes the resident blocks occupy now
 * @param capacityBytes     the tier's byte budget
 */
public record TierStats(long hits, long misses, long bytesRead, long bytesWritten, long evictions,
                        long checksumFailures, long blocks, long usedBytes, long capacityBytes) {
}
