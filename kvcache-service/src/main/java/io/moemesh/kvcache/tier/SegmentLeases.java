package io.moemesh.kvcache.tier;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongSupplier;

/**
 * The {@code Locate} leases on an {@link SsdTier}'s segment files: until a lease ends, compaction keeps the file of a
 * segment it emptied (its records are copied and out of the index already) instead of unlinking it, because a
 * same-host reader holding the extent may be about to open it. Leases are recorded while the tier's index lock is
 * held ({@link SsdTier#locate}), and compaction retires its victims only after swapping their records out under that
 * lock, so a lease on a victim is always seen by {@link #retire}.
 *
 * <p>A kept segment is unlinked soon after its lease ends by a sweep of its own ({@link #scheduleSweep}), about
 * {@value #SWEEP_MARGIN_MILLIS} ms after, not at the tier's next compaction: that comes a compaction period later, or
 * never when compaction is off. The sweep runs under the tier's compaction lock, which the tier's close takes: nothing
 * is unlinked once the directory's lock is released (its next opener may be reading the file), and while a compaction
 * runs, the compaction releases ended leases between its victims instead.
 */
final class SegmentLeases {
    /** How long after a kept segment's lease ends the sweep runs. */
    static final long SWEEP_MARGIN_MILLIS = 100;
    private static final long SWEEP_MARGIN_NANOS = TimeUnit.MILLISECONDS.toNanos(SWEEP_MARGIN_MILLIS);

    private final LongSupplier clock;
    private final Path directory;
    private final ReentrantLock compactionLock;
    /** Segment id → the clock time (ns) its latest lease ends. */
    private final Map<Long, Long> until = new HashMap<>();
    /** Retired segments whose file is kept until their lease ends. */
    private final List<Segment> kept = new ArrayList<>();

    /**
     * Runs {@link #sweep}: created with the first segment kept (most tiers never keep one); under the compaction lock,
     * as are {@link #sweepScheduled} and {@link #stopped}.
     */
    private ScheduledExecutorService sweeper;
    private boolean sweepScheduled;
    private boolean stopped;

    /**
     * @param directory      the segments' directory (synced after an unlink)
     * @param compactionLock the tier's: held by compaction and close, and by the sweep while it works
     */
    SegmentLeases(LongSupplier clock, Path directory, ReentrantLock compactionLock) {
        this.clock = clock;
        this.directory = directory;
        this.compactionLock = compactionLock;
    }

    /** Leases segment {@code segmentId} until {@code untilNanos} (the clock's time; a later lease extends it). */
    synchronized void lease(long segmentId, long untilNanos) {
        until.merge(segmentId, untilNanos, Math::max);
    }

    /**
     * Compaction's end for a victim it copied out: unlinked now, or kept while a lease on it runs.
     *
     * @return whether it was unlinked now
     */
    boolean retire(Segment victim) {
        synchronized (this) {
            Long end = until.get(victim.id);
            if (end != null && end - clock.getAsLong() > 0) {
                kept.add(victim);
                return false;
            }
            until.remove(victim.id);
        }
        unlink(victim);
        return true;
    }

    /**
     * Forgets the ended leases and unlinks the kept segments they held.
     *
     * @return files unlinked
     */
    int releaseExpired() {
        List<Segment> expired = new ArrayList<>();
        synchronized (this) {
            long now = clock.getAsLong();
            until.values().removeIf(end -> end - now <= 0);
            for (var it = kept.iterator(); it.hasNext(); ) {
                Segment s = it.next();
                if (!until.containsKey(s.id)) {
                    expired.add(s);
                    it.remove();
                }
            }
        }
        expired.forEach(SegmentLeases::unlink);
        if (!expired.isEmpty()) {
            Segment.syncDirectory(directory);
        }
        return expired.size();
    }

    /**
     * Under the compaction lock (a compaction's end): while segments are kept, a sweep at the first kept lease's end
     * plus the margin, unless one is scheduled.
     */
    void scheduleSweep() {
        Long end;
        synchronized (this) {
            long now = clock.getAsLong();
            end = kept.stream().map(s -> until.getOrDefault(s.id, now)).reduce((a, b) -> a - b <= 0 ? a : b)
                    .orElse(null);
        }
        if (end == null || sweepScheduled || stopped) {
            return;
        }
        if (sweeper == null) {
            sweeper = Executors.newSingleThreadScheduledExecutor(
                    Thread.ofPlatform().name("kvcache-ssd-leases").daemon().factory());
        }
        sweeper.schedule(this::sweep, Math.max(0, end - clock.getAsLong()) + SWEEP_MARGIN_NANOS,
                TimeUnit.NANOSECONDS);
        sweepScheduled = true;
    }

    /** Unlinks the kept segments whose lease ended, and schedules itself again while some are kept. */
    private void sweep() {
        if (!compactionLock.tryLock()) {
            // A compaction runs (it releases ended leases between its victims) or the tier is closing.
            try {
                sweeper.schedule(this::sweep, SWEEP_MARGIN_NANOS, TimeUnit.NANOSECONDS);
            } catch (RejectedExecutionException closing) {
                // stopSweeps() ran: the kept files stay, marked retired, for the next open to delete
            }
            return;
        }
        try {
            sweepScheduled = false;
            if (!stopped) {
                releaseExpired();
                scheduleSweep();
            }
        } finally {
            compactionLock.unlock();
        }
    }

    /** Under the compaction lock (the tier closes): no sweep runs after this. */
    void stopSweeps() {
        stopped = true;
        if (sweeper != null) {
            sweeper.shutdownNow(); // none is running: a sweep works under the compaction lock
        }
    }

    /** Segments kept for a running lease. */
    synchronized int keptCount() {
        return kept.size();
    }

    /**
     * Closes the kept segments' files (the tier closes); the files stay, marked retired: a restart deletes them and
     * indexes the newer copies.
     */
    synchronized void closeKept() {
        kept.forEach(Segment::close);
    }

    private static void unlink(Segment s) {
        try {
            s.delete();
        } catch (IOException e) {
            // Left behind, its tombstones mark it retired: the next open deletes it and indexes the newer copies.
        }
    }
}
