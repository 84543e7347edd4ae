package io.moemesh.kvcache.tier;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongSupplier;

/**
 * The {@code Locate} leases on an {@link SsdTier}'s segment files: until a lease ends, compaction keeps the file of a
 * segment it emptied (its records are copied and out of the index already) instead of unlinking it, because a
 * same-host reader holding the extent may be about to open it. Leases are recorded while the tier's index lock is
 * held ({@link SsdTier#locate}), and compaction retires its victims only after swapping their records out under that
 * lock, so a lease on a victim is always seen by {@link #retire}.
 */
final class SegmentLeases {
    private final LongSupplier clock;
    /** Segment id → the clock time (ns) its latest lease ends. */
    private final Map<Long, Long> until = new HashMap<>();
    /** Retired segments whose file is kept until their lease ends. */
    private final List<Segment> kept = new ArrayList<>();

    SegmentLeases(LongSupplier clock) {
        this.clock = clock;
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
    int releaseExpired(Path directory) {
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
