package io.moemesh.router.coordination;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Who watches placements (open WatchPlacement streams, by watcher id) and which epoch each reporter last said it
 * applied (ReportRoutes' placement_epoch, by source id: a gateway uses one id for both), so a replan can wait until
 * every watcher dispatches under the new epoch.
 */
public final class WatcherRegistry {
    private final Map<String, Integer> openStreams = new HashMap<>();
    private final Map<String, Long> applied = new HashMap<>();

    public synchronized void opened(String watcherId) {
        openStreams.merge(watcherId, 1, Integer::sum);
        notifyAll();
    }

    public synchronized void closed(String watcherId) {
        openStreams.computeIfPresent(watcherId, (k, n) -> n == 1 ? null : n - 1);
        notifyAll();
    }

    /** {@code source} dispatches under {@code epoch} now (epochs only grow per source; a lower report is ignored). */
    public synchronized void reportApplied(String source, long epoch) {
        applied.merge(source, epoch, (a, b) -> Long.compareUnsigned(a, b) >= 0 ? a : b);
        notifyAll();
    }

    /** Open watchers with the epoch each reported applied (0 = none yet), by id. */
    public synchronized Map<String, Long> watchers() {
        Map<String, Long> out = new TreeMap<>();
        for (String id : openStreams.keySet()) {
            out.put(id, applied.getOrDefault(id, 0L));
        }
        return out;
    }

    /**
     * Waits until every open watcher reported {@code epoch} (or a later one) applied, at most {@code timeout}.
     *
     * @return the watchers that had not when the wait ended (empty: all applied)
     */
    public synchronized List<String> awaitApplied(long epoch, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            List<String> pending = new ArrayList<>();
            for (String id : new TreeMap<>(openStreams).keySet()) {
                if (Long.compareUnsigned(applied.getOrDefault(id, 0L), epoch) < 0) {
                    pending.add(id);
                }
            }
            long left = deadline - System.nanoTime();
            if (pending.isEmpty() || left <= 0) {
                return pending;
            }
            wait(Math.max(1, left / 1_000_000));
        }
    }
}
