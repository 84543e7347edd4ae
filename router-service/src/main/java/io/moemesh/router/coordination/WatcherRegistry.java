package io.moemesh.router.coordination;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.BooleanSupplier;
import java.util.function.LongSupplier;

/**
 * Who watches placements (open WatchPlacement streams, by watcher id) and which epoch each reporter last said it
 * applied (ReportRoutes' placement_epoch, by source id: a gateway uses one id for both), so a replan can wait until
 * every watcher dispatches under the new epoch.
 *
 * <p>Only an open watcher's epoch is ever read, but a source may report before its watch opens (or between two
 * watches), so reporters without an open watch are kept too, the {@value #MAX_UNWATCHED_SOURCES} most recently
 * reporting ones: without a bound, every gateway that ever reported (new pod names after each rollout) would stay
 * for the router's lifetime.
 */
public final class WatcherRegistry {
    /** UTF-8 bytes a watcher or source id may have (router.v1 watcher_id and ReportRoutes' source). */
    public static final int MAX_ID_BYTES = 256;
    /** Reporters without an open watch whose applied epoch is kept (least recently reporting dropped first). */
    static final int MAX_UNWATCHED_SOURCES = 1024;

    private final Map<String, Integer> openStreams = new HashMap<>();
    /** In access order: the eldest is the source that reported least recently. */
    private final Map<String, Long> applied = new LinkedHashMap<>(16, 0.75f, true);
    /** Sources in {@link #applied} without an open watch (count). */
    private int unwatched;
    /** Threads in {@link #awaitApplied} (count). */
    private int waiting;

    public synchronized void opened(String watcherId) {
        if (openStreams.merge(watcherId, 1, Integer::sum) == 1 && applied.containsKey(watcherId)) {
            unwatched--;
        }
        notifyAll();
    }

    public synchronized void closed(String watcherId) {
        if (openStreams.containsKey(watcherId)
                && openStreams.computeIfPresent(watcherId, (k, n) -> n == 1 ? null : n - 1) == null
                && applied.containsKey(watcherId)) {
            unwatched++;
        }
        prune();
        notifyAll();
    }

    /**
     * {@code source} dispatches under {@code epoch} now. The latest report is kept, not the highest: a gateway that
     * restarted under the same id from an older placement file dispatches under that older epoch, whatever it said
     * before.
     */
    public synchronized void reportApplied(String source, long epoch) {
        boolean isNew = !applied.containsKey(source);
        applied.put(source, epoch);
        if (isNew && !openStreams.containsKey(source)) {
            unwatched++;
        }
        prune();
        notifyAll();
    }

    /** Sources whose applied epoch is kept (count): the open watchers' and the most recent others'. */
    synchronized int sourcesKept() {
        return applied.size();
    }

    private void prune() {
        // Counted as they change, not by a scan: a scan on every report would cost the whole map once the bound is
        // reached. The loop below runs only when one source is too many, and drops the eldest.
        if (unwatched <= MAX_UNWATCHED_SOURCES) {
            return;
        }
        for (Iterator<String> it = applied.keySet().iterator(); it.hasNext() && unwatched > MAX_UNWATCHED_SOURCES; ) {
            if (!openStreams.containsKey(it.next())) {
                it.remove();
                unwatched--;
            }
        }
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
     * Waits until every open watcher reported {@code epoch} applied, or a later one up to {@code newest} (what this
     * router published since), at most {@code timeout}, and no longer than {@code giveUp} says false: it is asked at
     * the start and after every change and every {@link #wakeWaiters()} (the caller wakes the waits when their calls
     * are cancelled or the router stops). An epoch above {@code newest} is not this router's: a gateway that holds
     * one (a router before this one published it) ignores {@code epoch}, as it is not newer than its own.
     *
     * @return the watchers that had not when the wait ended (empty: all applied)
     */
    public synchronized List<String> awaitApplied(long epoch, LongSupplier newest, Duration timeout,
                                                  BooleanSupplier giveUp) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        waiting++;
        try {
            while (true) {
                List<String> pending = new ArrayList<>();
                long top = newest.getAsLong();
                for (String id : new TreeMap<>(openStreams).keySet()) {
                    long theirs = applied.getOrDefault(id, 0L);
                    if (Long.compareUnsigned(theirs, epoch) < 0
                            || (Long.compareUnsigned(theirs, top) > 0 && theirs != epoch)) {
                        pending.add(id);
                    }
                }
                long left = deadline - System.nanoTime();
                if (pending.isEmpty() || left <= 0 || giveUp.getAsBoolean()) {
                    return pending;
                }
                wait(Math.max(1, left / 1_000_000));
            }
        } finally {
            waiting--;
            notifyAll();
        }
    }

    /** Has every {@link #awaitApplied} ask its {@code giveUp} again now. */
    public synchronized void wakeWaiters() {
        notifyAll();
    }

    /**
     * Wakes every {@link #awaitApplied} whose {@code giveUp} now says true and waits, at most {@code max}, until no
     * call waits any more: each has its pending watchers computed before anything else changes the registry.
     */
    public synchronized void releaseWaiters(Duration max) {
        long deadline = System.nanoTime() + max.toNanos();
        notifyAll();
        try {
            for (long left = max.toNanos(); waiting > 0 && left > 0; left = deadline - System.nanoTime()) {
                wait(Math.max(1, left / 1_000_000));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** The {@link #awaitApplied} calls waiting now (count). */
    public synchronized int waiting() {
        return waiting;
    }
}
