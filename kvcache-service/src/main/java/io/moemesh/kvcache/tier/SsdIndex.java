package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.policy.AccessHint;
import io.moemesh.kvcache.policy.BlockHistory;
import io.moemesh.kvcache.policy.EvictionPolicy;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SequencedMap;
import java.util.TreeMap;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

/**
 * An {@link SsdTier}'s in-memory state: the index key → record ({@link IndexEntry}), the segments in use, the
 * eviction policy's view and the byte counts. Why apart from the tier: the tier is the I/O (appends, reads, tombstones,
 * forces) and its locks; this is what those decide on, under one monitor (this object's), held briefly and never
 * across I/O; nothing here does I/O. A record the index lets go of comes back as a {@link Tombstones.Dead} for the
 * tier to write once the monitor is released.
 *
 * <p>Lock order: the tier's append lock before this monitor; this monitor before {@link SegmentLeases}'.
 */
final class SsdIndex {
    private final Map<BlockKey, IndexEntry> index = new HashMap<>();
    /**
     * The records of blocks promoted to the tier above ({@link #promoteOut}): out of the index and its capacity, dead
     * space to compaction, but not tombstoned, so a restart after a kill -9 still finds the block. Let go of (their
     * tombstone the caller's) when the block leaves the store ({@link #letGo}) or a newer record of it is inserted,
     * forgotten when compaction retires their segment. A key is never both here and in {@link #index}: a record enters
     * the index only by a put, which takes the key's entry out of here. So it holds at most the tier above's blocks.
     */
    private final Map<BlockKey, Tombstones.Dead> promoted = new HashMap<>();
    private final TreeMap<Long, Segment> segments = new TreeMap<>();
    private final EvictionPolicy policy;
    private final LongSupplier clock;
    private final TierCounters counters;
    private final long capacityBytes;
    private long usedBytes;
    private long pinnedBytes;

    SsdIndex(EvictionPolicy policy, LongSupplier clock, TierCounters counters, long capacityBytes) {
        this.policy = policy;
        this.clock = clock;
        this.counters = counters;
        this.capacityBytes = capacityBytes;
    }

    /**
     * Takes the scan's segments and live records, in log order (the policy's ties then go oldest record first), and
     * evicts down to the capacity: a smaller one than last time, or tombstones a crash lost (no block is pinned yet).
     *
     * @return the tombstones of the blocks evicted
     */
    synchronized List<Tombstones.Dead> load(List<Segment> scanned, SequencedMap<BlockKey, IndexEntry> live) {
        scanned.forEach(s -> segments.put(s.id, s));
        long now = clock.getAsLong();
        live.forEach((key, e) -> {
            index.put(key, e);
            e.history = BlockHistory.inserted(key, e.segment.recordBytes, now, AccessHint.NONE);
            usedBytes += e.segment.recordBytes;
            policy.onInsert(e.history);
        });
        List<Tombstones.Dead> surplus = new ArrayList<>();
        while (usedBytes > capacityBytes) {
            surplus.add(evictOne());
        }
        return surplus;
    }

    /** The block's entry, touched as an access; null when it is not stored. */
    synchronized IndexEntry touch(BlockKey key, AccessHint hint) {
        IndexEntry e = index.get(key);
        if (e != null) {
            touch(e, hint);
        }
        return e;
    }

    synchronized IndexEntry find(BlockKey key) {
        return index.get(key);
    }

    /**
     * Room for a new record of {@code stride} bytes, evicting into {@code evicted}: STORED when there is room now,
     * ALREADY_PRESENT (the block touched), or NO_SPACE when pinned blocks leave none.
     */
    synchronized PutResult makeRoom(BlockKey key, int stride, AccessHint hint, List<Tombstones.Dead> evicted) {
        if (touch(key, hint) != null) {
            return PutResult.ALREADY_PRESENT;
        }
        if (pinnedBytes + stride > capacityBytes) {
            return PutResult.NO_SPACE;
        }
        while (usedBytes + stride > capacityBytes) {
            evicted.add(evictOne());
        }
        return PutResult.STORED;
    }

    /**
     * Enters a record appended (and forced as the policy says).
     *
     * @return the record of the block kept since its promotion ({@link #promoteOut}), which this one supersedes: its
     *         tombstone the caller's (after this record, so a later eviction of this one cannot bring it back); null
     *         when none
     */
    synchronized Tombstones.Dead insert(BlockKey key, IndexEntry e) {
        index.put(key, e);
        usedBytes += e.segment.recordBytes;
        e.segment.liveBytes += e.segment.recordBytes;
        policy.onInsert(e.history);
        return promoted.remove(key);
    }

    /** Touches the entry if the key still names it (a get that read it). */
    synchronized void touchIfCurrent(BlockKey key, IndexEntry e, AccessHint hint) {
        if (index.get(key) == e) {
            touch(e, hint);
        }
    }

    /**
     * The block's entry, its segment leased until {@code untilNanos} and the access recorded; null when not stored.
     * The lease is taken under this monitor, so compaction's swap-in cannot come between.
     */
    synchronized IndexEntry lease(BlockKey key, AccessHint hint, SegmentLeases leases, long untilNanos) {
        IndexEntry e = index.get(key);
        if (e != null) {
            leases.lease(e.segment.id, untilNanos);
            touch(e, hint);
        }
        return e;
    }

    /** Drops the entry if the key still names it. @return its tombstone, null when it was not current */
    synchronized Tombstones.Dead dropIfCurrent(BlockKey key, IndexEntry e) {
        return index.get(key) == e ? drop(key, e) : null;
    }

    /** @return the removed record's tombstone, null when the block is not stored */
    synchronized Tombstones.Dead remove(BlockKey key) {
        IndexEntry e = index.get(key);
        return e == null ? null : drop(key, e);
    }

    /**
     * Takes the block out of the index and its capacity for a promotion, keeping its record's place (no tombstone).
     *
     * @return whether it was stored
     */
    synchronized boolean promoteOut(BlockKey key) {
        IndexEntry e = index.get(key);
        if (e == null) {
            return false;
        }
        promoted.put(key, drop(key, e)); // an indexed key has no kept record (see the field), so none is overwritten
        return true;
    }

    /** @return the record kept since the block's promotion, now let go of (its tombstone the caller's); null if none */
    synchronized Tombstones.Dead letGo(BlockKey key) {
        return promoted.remove(key);
    }

    /** Records kept for promoted blocks (tests). */
    synchronized int promotedCount() {
        return promoted.size();
    }

    private Tombstones.Dead evictOne() {
        BlockKey victim = policy.victim(k -> !index.get(k).pinned).orElseThrow(() -> new IllegalStateException(
                "eviction policy found no unpinned block while " + (usedBytes - pinnedBytes)
                        + " unpinned bytes are resident"));
        counters.evictions.increment();
        return drop(victim, index.get(victim));
    }

    /** The record becomes dead space. */
    private Tombstones.Dead drop(BlockKey key, IndexEntry e) {
        index.remove(key);
        int stride = e.segment.recordBytes;
        usedBytes -= stride;
        e.segment.liveBytes -= stride;
        e.segment.deadBytes += stride;
        if (e.pinned) {
            pinnedBytes -= stride;
        }
        policy.onRemove(key);
        return new Tombstones.Dead(e.segment, e.offset, key);
    }

    private void touch(IndexEntry e, AccessHint hint) {
        e.history = e.history.accessed(clock.getAsLong(), hint);
        policy.onAccess(e.history);
    }

    synchronized boolean contains(BlockKey key) {
        return index.containsKey(key);
    }

    synchronized boolean pin(BlockKey key) {
        IndexEntry e = index.get(key);
        if (e == null) {
            return false;
        }
        if (!e.pinned) {
            e.pinned = true;
            pinnedBytes += e.segment.recordBytes;
        }
        return true;
    }

    synchronized boolean unpin(BlockKey key) {
        IndexEntry e = index.get(key);
        if (e == null || !e.pinned) {
            return false;
        }
        e.pinned = false;
        pinnedBytes -= e.segment.recordBytes;
        return true;
    }

    synchronized boolean isPinned(BlockKey key) {
        IndexEntry e = index.get(key);
        return e != null && e.pinned;
    }

    synchronized Optional<BlockHistory> history(BlockKey key) {
        IndexEntry e = index.get(key);
        return e == null ? Optional.empty() : Optional.of(e.history);
    }

    // --- segments ---

    synchronized void list(Segment s) {
        segments.put(s.id, s);
    }

    synchronized void unlist(Segment s) {
        segments.remove(s.id);
    }

    /**
     * Sealed segments at or below {@code liveFraction}, with the live entries in each by offset; wholly dead ones
     * first (they need no copy, so a run that fails later has retired them), then by id. {@code active} is read under
     * the monitor: a new active segment is set before it is listed, so it is never taken for a sealed empty one.
     */
    List<SsdCompactor.Victim> compactionCandidates(Supplier<Segment> active, double liveFraction) {
        Map<Segment, List<Map.Entry<BlockKey, IndexEntry>>> live = new HashMap<>();
        synchronized (this) {
            Segment act = active.get();
            for (Segment s : segments.values()) {
                long area = s.recordArea();
                if (s != act && (area == 0 || s.liveBytes < liveFraction * area)) {
                    live.put(s, new ArrayList<>());
                }
            }
            for (Map.Entry<BlockKey, IndexEntry> e : index.entrySet()) {
                List<Map.Entry<BlockKey, IndexEntry>> l = live.get(e.getValue().segment);
                if (l != null) {
                    l.add(Map.entry(e.getKey(), e.getValue()));
                }
            }
        }
        List<SsdCompactor.Victim> out = new ArrayList<>();
        live.forEach((s, l) -> {
            l.sort(Comparator.comparingLong(e -> e.getValue().offset));
            out.add(new SsdCompactor.Victim(s, l));
        });
        out.sort(Comparator.comparing((SsdCompactor.Victim v) -> !v.live().isEmpty())
                .thenComparingLong(v -> v.segment().id));
        return out;
    }

    /**
     * Moves each entry that still points at its old record to its copy, and unlists {@code retired} (null: none);
     * one step.
     *
     * @return the copies whose record the index let go of meanwhile: dead space, their tombstones the caller's
     */
    synchronized List<SsdCompactor.Moved> swapIn(List<SsdCompactor.Moved> moved, Segment retired) {
        List<SsdCompactor.Moved> stale = new ArrayList<>();
        for (SsdCompactor.Moved m : moved) {
            int stride = m.to().recordBytes;
            if (index.get(m.key()) == m.from()) {
                index.put(m.key(), m.from().movedTo(m.to(), m.offset()));
                m.to().liveBytes += stride;
                m.from().segment.liveBytes -= stride; // a half-copied victim stays
                m.from().segment.deadBytes += stride;
            } else {
                m.to().deadBytes += stride;
                stale.add(m);
            }
        }
        if (retired != null) {
            segments.remove(retired.id);
            // Its file goes (or is marked retired) with the kept records in it: nothing is left to let go of.
            promoted.values().removeIf(d -> d.segment() == retired);
        }
        return stale;
    }

    /** Counts bytes of {@code s} as dead (copies a failed compaction could not cut off). */
    synchronized void countDead(Segment s, long bytes) {
        s.deadBytes += bytes;
    }

    // --- accounting ---

    synchronized long usedBytes() {
        return usedBytes;
    }

    synchronized long blockCount() {
        return index.size();
    }

    synchronized long deadBytes() {
        return segments.values().stream().mapToLong(s -> s.deadBytes).sum();
    }

    /** Bytes of all segment files, their tombstone files included. */
    synchronized long diskBytes() {
        return segments.values().stream().mapToLong(s -> s.size() + s.deadLog().size()).sum();
    }

    synchronized int segmentCount() {
        return segments.size();
    }

    /** Oldest first. */
    synchronized List<Segment> segments() {
        return List.copyOf(segments.values());
    }

    synchronized TierStats stats() {
        return counters.snapshot(index.size(), usedBytes, capacityBytes);
    }

    /** Closes every segment, and the compacted ones kept for leases (the tier closes). */
    synchronized void closeAll(SegmentLeases leases) {
        segments.values().forEach(Segment::close);
        leases.closeKept();
    }
}
