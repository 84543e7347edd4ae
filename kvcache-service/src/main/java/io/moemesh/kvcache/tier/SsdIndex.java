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
import java.util.function.Consumer;
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
    /**
     * The copies a compaction run appended to its output and has not swapped in yet, by the entry copied
     * ({@link #copied}). A restart would index such a copy (a later segment's copy wins), so a drop of the entry
     * hands back the copy's tombstone with the original's: a block let go of during the copy stays gone after a
     * crash, as of the last forced tombstones. Emptied by {@link #swapIn} and {@link #forgetCopies}.
     */
    private final Map<IndexEntry, Tombstones.Dead> copying = new HashMap<>();
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
     * evicts down to the capacity: a smaller one than last time, or tombstones a crash lost (no block is pinned yet,
     * nothing is being copied).
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
            evictOne(surplus);
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
     * Whether a new record of {@code stride} bytes could be stored, evicting nothing yet (a put checks before it
     * writes, and evicts only once its record is written: {@link #admit}): STORED, ALREADY_PRESENT (the block
     * touched), or NO_SPACE when pinned blocks leave no room.
     */
    synchronized PutResult roomFor(BlockKey key, int stride, AccessHint hint) {
        if (touch(key, hint) != null) {
            return PutResult.ALREADY_PRESENT;
        }
        return pinnedBytes + stride > capacityBytes ? PutResult.NO_SPACE : PutResult.STORED;
    }

    /**
     * Enters a record appended (and forced as the policy says), evicting for its room first, in one step: STORED, or
     * NO_SPACE (nothing evicted, nothing entered) when blocks pinned since {@link #roomFor} leave no room.
     *
     * @param dead receives the tombstones of the blocks evicted and, last, of the record of the block kept since its
     *             promotion ({@link #promoteOut}), which this one supersedes (tombstoned after this record is
     *             entered, so a later eviction of this one cannot bring it back)
     */
    synchronized PutResult admit(BlockKey key, IndexEntry e, List<Tombstones.Dead> dead) {
        int stride = e.segment.recordBytes;
        if (index.containsKey(key)) {
            return PutResult.ALREADY_PRESENT; // puts are serialised: only a put of the key could have entered it
        }
        if (pinnedBytes + stride > capacityBytes) {
            return PutResult.NO_SPACE;
        }
        while (usedBytes + stride > capacityBytes) {
            evictOne(dead);
        }
        // The policy first: if it throws, nothing points at the record the caller then takes back.
        policy.onInsert(e.history);
        index.put(key, e);
        usedBytes += stride;
        e.segment.liveBytes += stride;
        Tombstones.Dead superseded = promoted.remove(key);
        if (superseded != null) {
            dead.add(superseded);
        }
        return PutResult.STORED;
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

    /**
     * Drops the entry if the key still names it.
     *
     * @param dead receives its tombstones (its record's, and an unswapped compaction copy's: {@link #copying}), the
     *             caller's list so that they reach it also when the policy's onRemove then throws: the entry is out
     *             of the index by then, and a restart would serve it if they were not written
     */
    synchronized void dropIfCurrent(BlockKey key, IndexEntry e, List<Tombstones.Dead> dead) {
        if (index.get(key) == e) {
            drop(key, e, dead, dead::add);
        }
    }

    /** Drops the block, its tombstones to {@code dead} (as {@link #dropIfCurrent}). @return whether it was stored */
    synchronized boolean remove(BlockKey key, List<Tombstones.Dead> dead) {
        IndexEntry e = index.get(key);
        if (e != null) {
            drop(key, e, dead, dead::add);
        }
        return e != null;
    }

    /**
     * Takes the block out of the index and its capacity for a promotion, keeping its record's place (no tombstone).
     * An unswapped compaction copy of it is let go of ({@code copies}): the record kept is the one a restart serves.
     *
     * @return whether it was stored
     */
    synchronized boolean promoteOut(BlockKey key, List<Tombstones.Dead> copies) {
        IndexEntry e = index.get(key);
        if (e == null) {
            return false;
        }
        // An indexed key has no kept record (see the field), so none is overwritten.
        drop(key, e, copies, kept -> promoted.put(key, kept));
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

    /** Evicts the policy's victim; its tombstones go to {@code dead}. */
    private void evictOne(List<Tombstones.Dead> dead) {
        BlockKey victim = policy.victim(k -> !index.get(k).pinned).orElseThrow(() -> new IllegalStateException(
                "eviction policy found no unpinned block while " + (usedBytes - pinnedBytes)
                        + " unpinned bytes are resident"));
        counters.evictions.increment();
        drop(victim, index.get(victim), dead, dead::add);
    }

    /**
     * The record becomes dead space: its tombstone goes to {@code tombstone} (before the policy hears of it, so a
     * throwing policy cannot leave a record out of the index that no tombstone names); that of an unswapped
     * compaction copy of it to {@code copies}.
     */
    private void drop(BlockKey key, IndexEntry e, List<Tombstones.Dead> copies,
                      Consumer<Tombstones.Dead> tombstone) {
        Tombstones.Dead copy = copying.remove(e);
        if (copy != null) {
            copies.add(copy);
        }
        index.remove(key);
        int stride = e.segment.recordBytes;
        usedBytes -= stride;
        e.segment.liveBytes -= stride;
        e.segment.deadBytes += stride;
        if (e.pinned) {
            pinnedBytes -= stride;
        }
        tombstone.accept(new Tombstones.Dead(e.segment, e.offset, key));
        policy.onRemove(key);
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
     * Notes a record compaction appended to its output, not swapped in yet ({@link #copying}).
     *
     * @return the copy's tombstone, for the caller to write, when the entry copied was let go of before this (its
     *         drop could not name the copy); null when noted
     */
    synchronized Tombstones.Dead copied(BlockKey key, IndexEntry from, Segment to, long offset) {
        Tombstones.Dead copy = new Tombstones.Dead(to, offset, key);
        if (index.get(key) != from) {
            return copy;
        }
        copying.put(from, copy);
        return null;
    }

    /** Forgets the copies a failed compaction cuts off its outputs (or tombstones itself). */
    synchronized void forgetCopies(List<SsdCompactor.Moved> cut) {
        cut.forEach(m -> copying.remove(m.from()));
    }

    /**
     * Moves each entry that still points at its old record to its copy, and unlists {@code retired} (null: none);
     * one step.
     *
     * @return the copies whose record the index let go of meanwhile and whose tombstone was not handed out yet (a
     *         drop after {@link #copied} hands it out itself): dead space, their tombstones the caller's
     */
    synchronized List<SsdCompactor.Moved> swapIn(List<SsdCompactor.Moved> moved, Segment retired) {
        List<SsdCompactor.Moved> stale = new ArrayList<>();
        for (SsdCompactor.Moved m : moved) {
            int stride = m.to().recordBytes;
            boolean noted = copying.remove(m.from()) != null;
            if (index.get(m.key()) == m.from()) {
                index.put(m.key(), m.from().movedTo(m.to(), m.offset()));
                m.to().liveBytes += stride;
                m.from().segment.liveBytes -= stride; // a half-copied victim stays
                m.from().segment.deadBytes += stride;
            } else {
                m.to().deadBytes += stride;
                if (noted) {
                    stale.add(m);
                }
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
