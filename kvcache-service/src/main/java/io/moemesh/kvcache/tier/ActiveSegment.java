package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.model.kv.ModelFingerprint;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Where an {@link SsdTier}'s puts append: the active segment, a new one once it is full (or of another encoding), the
 * ids of new segments (compaction's outputs too), entering a written record in the index, and taking back the record
 * of a put that failed after writing it.
 * Why apart from the tier: the put's write path, beside the tier's reads, removals and compaction hooks.
 *
 * <p>Called under the tier's append lock, but for {@link #current()} (read under the index's monitor by compaction)
 * and {@link #create} (compaction's outputs, under the compaction lock: ids come from an atomic counter).
 */
final class ActiveSegment {
    private static final Logger log = LoggerFactory.getLogger(ActiveSegment.class);

    private final SsdConfig config;
    private final KvLayout layout;
    private final ModelFingerprint fingerprint;
    private final SsdIndex index;
    private final FsyncSchedule fsync;
    private final Tombstones tombstones;
    /**
     * How a failed put's record is cut off: {@link Segment#truncateTo}; tests make it fail (a disk that reports an
     * I/O error), as {@link FsyncSchedule.SegmentForce} does the force.
     */
    @FunctionalInterface
    interface SegmentCut {
        void cut(Segment segment, long bytes) throws IOException;
    }

    private final AtomicLong nextSegmentId;
    private final SegmentCut cutter;
    private volatile Segment active;

    ActiveSegment(SsdConfig config, KvLayout layout, ModelFingerprint fingerprint, SsdIndex index,
                  FsyncSchedule fsync, Tombstones tombstones, long nextSegmentId, SegmentCut cutter) {
        this.cutter = cutter;
        this.config = config;
        this.layout = layout;
        this.fingerprint = fingerprint;
        this.index = index;
        this.fsync = fsync;
        this.tombstones = tombstones;
        this.nextSegmentId = new AtomicLong(nextSegmentId);
    }

    /** The segment puts append to now; null before the first put, and after a failed one. */
    Segment current() {
        return active;
    }

    /** The segment to append a record of {@code stride} bytes to: the active one, or a new one past the size. */
    Segment forRecord(int stride) {
        Segment seg = active;
        if (seg != null && seg.header.encoding() == config.encoding()
                && (seg.size() + stride <= config.segmentBytes() || seg.recordArea() == 0)) {
            return seg;
        }
        try {
            if (seg != null && config.fsync() != FsyncPolicy.NEVER) {
                // Sealing forces what INTERVAL has not yet (NEVER: sync() does).
                fsync.force(seg);
            }
            Segment next = create(config.encoding());
            // Active before it is listed: compaction, which skips the active segment, must never see it as a
            // sealed empty segment and delete it under this put.
            active = next;
            index.list(next);
            return next;
        } catch (IOException e) {
            throw new UncheckedIOException("starting a segment in " + config.directory() + " failed", e);
        }
    }

    /**
     * A failed append or force: its tail is suspect, so the next put goes on in a fresh segment. Its acknowledged
     * records stay in fsync's unforced set (the timer, sync() and close() force it).
     */
    void abandon() {
        active = null;
    }

    /** A new segment file with the next id (not listed in the index). */
    Segment create(PayloadEncoding encoding) throws IOException {
        return Segment.create(config.directory(),
                SegmentHeader.of(layout, encoding, fingerprint, nextSegmentId.getAndIncrement()));
    }

    /**
     * Enters the record of {@code key} just appended at {@code at} in {@code seg} ({@link SsdIndex#admit}), or takes
     * it back when blocks pinned since the room check leave no room (NO_SPACE) or the admit throws (a broken
     * invariant: the record must not be left behind unindexed, which a restart would serve). The evicted blocks'
     * tombstones, then that of the record kept since the block's promotion (a demotion writes the block anew), are
     * written after the new record is appended, so a kill -9 keeps one of the two (both are in the page cache), and
     * before the new one can be evicted, so that eviction cannot bring the old one back. Under ALWAYS they are forced
     * before the put returns; under INTERVAL and NEVER on the fsync schedule, tombstone files first: a power loss
     * before then can bring an evicted block back (the open evicts the surplus again) or lose both copies of a
     * demoted one, as it loses the interval's other records.
     */
    PutResult admit(Segment seg, long at, BlockKey key, IndexEntry entry) {
        List<Tombstones.Dead> dead = new ArrayList<>();
        PutResult admitted;
        try {
            admitted = index.admit(key, entry, dead);
        } catch (RuntimeException e) {
            takeBack(seg, at, key);
            writeEvicted(dead); // what it evicted before it failed is out of the index already
            throw e;
        }
        if (admitted != PutResult.STORED) {
            takeBack(seg, at, key);
            return admitted;
        }
        writeEvicted(dead);
        return PutResult.STORED;
    }

    /** An admit's eviction tombstones: under ALWAYS forced before the put returns (or throws), else on the schedule. */
    private void writeEvicted(List<Tombstones.Dead> dead) {
        if (config.fsync() == FsyncPolicy.ALWAYS) {
            tombstones.writeNow(dead);
        } else {
            tombstones.write(dead);
        }
    }

    /**
     * Takes back the record at {@code at} of a put that failed after appending it (or found no room once written),
     * so that no restart serves a block whose put did not store it: cut off its segment, so the next append lines up
     * after the records before it, and under ALWAYS and INTERVAL the cut forced before the put reports its failure
     * (under NEVER by the next sync() or close(), as its other records are: a power loss before then can bring the
     * record back, as it can lose acknowledged ones). When the cut or its force fails, the record is tombstoned (the
     * tombstone forced now, under NEVER on the schedule; also when only the force failed, as the cut may not be
     * durable), counted as dead space only when the cut failed (a cut record is no longer in the file, so counting it
     * would overstate {@code deadBytes()} until compaction or a restart), and the segment takes no more appends (a
     * later record of the key at the same offset would meet that tombstone at the next open). Never indexed nor
     * located, so no reader's extent is cut. An interrupt (which may have failed the force) is held back meanwhile:
     * the clean-up must not fail in turn. The force runs under the append lock (the caller's): a failed put pays a
     * second fsync, the cut's, before the next put can append.
     */
    void takeBack(Segment seg, long at, BlockKey key) {
        boolean interrupted = Thread.interrupted();
        boolean cut = false;
        try {
            cutter.cut(seg, at);
            cut = true;
            fsync.tookBack(seg, seg.recordBytes);
            if (config.fsync() != FsyncPolicy.NEVER) {
                fsync.force(seg);
            }
        } catch (IOException e) {
            log.warn("cutting the record of block {} off {} (or forcing the cut) failed ({}): tombstoned", key,
                    seg.path, e.toString());
            if (!cut) {
                index.countDead(seg, seg.recordBytes);
            }
            List<Tombstones.Dead> dead = List.of(new Tombstones.Dead(seg, at, key));
            if (config.fsync() == FsyncPolicy.NEVER) {
                tombstones.write(dead);
            } else {
                tombstones.writeNow(dead);
            }
            abandon();
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
