package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.model.kv.ModelFingerprint;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Where an {@link SsdTier}'s puts append: the active segment, a new one once it is full (or of another encoding), the
 * ids of new segments (compaction's outputs too), and taking back the record of a put that failed after writing it.
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
    private final AtomicLong nextSegmentId;
    private volatile Segment active;

    ActiveSegment(SsdConfig config, KvLayout layout, ModelFingerprint fingerprint, SsdIndex index,
                  FsyncSchedule fsync, Tombstones tombstones, long nextSegmentId) {
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
     * Takes back the record at {@code at} of a put that failed after appending it (or found no room once written),
     * so that no restart serves a block whose put did not store it: cut off its segment, so the next append lines up
     * after the records before it, or, when the cut fails, tombstoned and counted as dead space. Never indexed nor
     * located, so no reader's extent is cut. An interrupt (which may have failed the force) is held back meanwhile:
     * the clean-up must not fail in turn.
     */
    void takeBack(Segment seg, long at, BlockKey key) {
        boolean interrupted = Thread.interrupted();
        try {
            seg.truncateTo(at);
            fsync.tookBack(seg, seg.recordBytes);
        } catch (IOException e) {
            log.warn("cutting the record of block {} off {} failed ({}): tombstoned", key, seg.path, e.toString());
            index.countDead(seg, seg.recordBytes);
            tombstones.write(List.of(new Tombstones.Dead(seg, at, key)));
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
