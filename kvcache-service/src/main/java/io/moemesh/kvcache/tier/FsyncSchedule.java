package io.moemesh.kvcache.tier;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Collection;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BooleanSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * When an {@link SsdTier} forces its segments under its {@link FsyncPolicy}: after every record (ALWAYS), after
 * {@code fsyncIntervalBytes} or {@code fsyncInterval}, whichever comes first (INTERVAL, with a timer forcing what a
 * quiet interval left), or never (NEVER: the OS decides, until {@link SsdTier#sync()} or {@link SsdTier#close()}).
 *
 * <p>It tracks every segment appended to since that segment was last forced, not only the active one: under NEVER
 * the segments sealed since the last sync, and under every policy a segment abandoned after a failed append (its
 * earlier records were acknowledged); and every segment whose tombstones ({@link #afterTombstone}) were appended since.
 * Forcing "everything" forces all of them, and {@link #unsyncedBytes()} counts all their record bytes.
 *
 * <p>Guarded by the tier's append lock: the tier holds it around {@link #afterAppend}, {@link #force},
 * {@link #forceTombstones} and {@link #forceAll}; the methods that the tier's other threads call ({@link #sync},
 * {@link #unsyncedBytes}, {@link #forget}, the timer) take it themselves.
 */
final class FsyncSchedule {
    private static final Logger log = LoggerFactory.getLogger(FsyncSchedule.class);

    /** How a segment is forced: {@link Segment#force()}; tests make it fail (a disk that reports an I/O error). */
    @FunctionalInterface
    interface SegmentForce {
        void force(Segment segment) throws IOException;
    }

    private final SsdConfig config;
    private final ReentrantLock appendLock;
    private final SegmentForce forcer;
    /** Segments with records appended since their last force, and those records' bytes; oldest first. */
    private final Map<Segment, Long> unforced = new LinkedHashMap<>();
    /** Segments whose tombstone file has entries appended since its last force (thread-safe: see afterTombstone). */
    private final Set<Segment> tombstoned = ConcurrentHashMap.newKeySet();
    private long lastSyncNanos = System.nanoTime();

    FsyncSchedule(SsdConfig config, ReentrantLock appendLock, SegmentForce forcer) {
        this.config = config;
        this.appendLock = appendLock;
        this.forcer = forcer;
    }

    /**
     * Counts a record of {@code stride} bytes appended to {@code seg} and, if the policy says so now, forces
     * {@code seg} (a failure is the put's) and then every other unforced segment (a failure there is logged: it
     * must not fail a put whose own record is forced; they stay unforced and are tried again).
     */
    void afterAppend(Segment seg, int stride) throws IOException {
        unforced.merge(seg, (long) stride, Long::sum);
        boolean due = switch (config.fsync()) {
            case ALWAYS -> true;
            case INTERVAL -> unforcedBytes() >= config.fsyncIntervalBytes()
                    || System.nanoTime() - lastSyncNanos >= config.fsyncInterval().toNanos();
            case NEVER -> false;
        };
        if (!due) {
            return;
        }
        lastSyncNanos = System.nanoTime();
        force(seg);
        if (!unforced.isEmpty() || !tombstoned.isEmpty()) {
            try {
                forceAll();
            } catch (IOException e) {
                log.warn("forcing an earlier SSD segment failed (tried again at the next force): {}", e.toString());
            }
        }
    }

    /**
     * Notes a tombstone appended to {@code seg}'s {@link DeadLog} (after the append): forced at the next force of
     * everything (a put's under ALWAYS, INTERVAL's timer, {@link #sync}, close) or of the tombstones (under ALWAYS,
     * a put's evictions before it returns: {@link Tombstones#writeNow}), never on its own, and not counted in
     * {@link #unsyncedBytes()} (record bytes) or INTERVAL's byte threshold. Without the append lock: a remove (under
     * the store's lock) must not wait for the timer's force.
     */
    void afterTombstone(Segment seg) {
        tombstoned.add(seg);
    }

    /**
     * Forces one segment (the one being sealed, or a put's); the interval's clock is left running, so the next
     * segment's first force comes on the same schedule.
     */
    void force(Segment seg) throws IOException {
        forcer.force(seg);
        unforced.remove(seg);
    }

    /**
     * {@code seg} was cut back by a record of {@code stride} bytes that a failed put had appended: not counted any
     * more, and the segment stays listed (with its other unforced bytes, if any) so the next force makes the cut
     * durable too (under ALWAYS and INTERVAL the taker-back forces it right away: {@link ActiveSegment#takeBack}).
     */
    void tookBack(Segment seg, int stride) {
        unforced.compute(seg, (s, bytes) -> bytes == null ? 0L : Math.max(0L, bytes - stride));
    }

    /**
     * Forces every segment with records appended since its last force. Tries them all, then throws the first
     * failure (the others suppressed); the ones that failed stay unforced.
     */
    void forceAll() throws IOException {
        IOException failed = null;
        try {
            forceTombstones();
        } catch (IOException e) {
            failed = e;
        }
        for (Iterator<Segment> it = unforced.keySet().iterator(); it.hasNext(); ) {
            Segment s = it.next();
            try {
                forcer.force(s);
                it.remove();
            } catch (IOException e) {
                if (failed == null) {
                    failed = e;
                } else {
                    failed.addSuppressed(e);
                }
            }
        }
        if (failed != null) {
            throw failed;
        }
    }

    /**
     * Forces every tombstone file with entries appended since its last force. Tries them all, then throws the first
     * failure (the others suppressed); the ones that failed stay noted.
     */
    void forceTombstones() throws IOException {
        IOException failed = null;
        for (Segment s : tombstoned) {
            tombstoned.remove(s); // before the force: an append after it is noted again
            try {
                s.deadLog().force();
            } catch (IOException e) {
                tombstoned.add(s);
                if (failed == null) {
                    failed = e;
                } else {
                    failed.addSuppressed(e);
                }
            }
        }
        if (failed != null) {
            throw failed;
        }
    }

    /** {@link SsdTier#sync()}: {@link #forceAll()} under the append lock. */
    void sync() {
        appendLock.lock();
        try {
            forceAll();
        } catch (IOException e) {
            throw new UncheckedIOException("forcing the SSD segments in " + config.directory() + " failed", e);
        } finally {
            appendLock.unlock();
        }
    }

    /**
     * Compaction retired these segments: their live records were copied into segments it forced, so they need no
     * force of their own (and keeping them would hold every retired segment until the next sync under NEVER).
     */
    void forget(Collection<Segment> retired) {
        appendLock.lock();
        try {
            unforced.keySet().removeAll(retired);
            tombstoned.removeAll(retired);
        } finally {
            appendLock.unlock();
        }
    }

    /**
     * Under INTERVAL, a daemon timer that forces every segment with unforced records every {@code fsyncInterval}
     * (a quiet interval's records are forced too), until {@code closed}; null under the other policies.
     */
    ScheduledExecutorService startTimer(BooleanSupplier closed) {
        if (config.fsync() != FsyncPolicy.INTERVAL) {
            return null;
        }
        ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "kvcache-ssd-fsync");
            t.setDaemon(true);
            return t;
        });
        // In nanoseconds: an interval below a millisecond would be 0 ms, which scheduleWithFixedDelay refuses.
        long ns = config.fsyncInterval().toNanos();
        timer.scheduleWithFixedDelay(() -> tick(closed), ns, ns, TimeUnit.NANOSECONDS);
        return timer;
    }

    private void tick(BooleanSupplier closed) {
        appendLock.lock();
        try {
            if (!closed.getAsBoolean() && (!unforced.isEmpty() || !tombstoned.isEmpty())) {
                lastSyncNanos = System.nanoTime();
                forceAll();
            }
        } catch (IOException e) {
            log.warn("forcing SSD segments in {} failed (tried again next tick): {}", config.directory(),
                    e.toString());
        } finally {
            appendLock.unlock();
        }
    }

    /** Record bytes appended since their segment's last force, over every segment. */
    long unsyncedBytes() {
        appendLock.lock();
        try {
            return unforcedBytes();
        } finally {
            appendLock.unlock();
        }
    }

    private long unforcedBytes() {
        long sum = 0;
        for (long b : unforced.values()) {
            sum += b;
        }
        return sum;
    }
}
