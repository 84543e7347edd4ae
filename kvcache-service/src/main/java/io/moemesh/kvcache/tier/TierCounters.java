package io.moemesh.kvcache.tier;

import java.util.concurrent.atomic.LongAdder;

/** The cumulative counters behind {@link TierStats}, updated from any thread. */
final class TierCounters {
    final LongAdder hits = new LongAdder();
    final LongAdder misses = new LongAdder();
    final LongAdder bytesRead = new LongAdder();
    final LongAdder bytesWritten = new LongAdder();
    final LongAdder evictions = new LongAdder();
    final LongAdder checksumFailures = new LongAdder();

    TierStats snapshot(long blocks, long usedBytes, long capacityBytes) {
        return new TierStats(hits.sum(), misses.sum(), bytesRead.sum(), bytesWritten.sum(), evictions.sum(),
                checksumFailures.sum(), blocks, usedBytes, capacityBytes);
    }
}
