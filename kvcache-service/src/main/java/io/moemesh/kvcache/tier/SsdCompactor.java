package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.function.BooleanSupplier;

/**
 * One run of {@link SsdTier#compact()}: every sealed segment whose live bytes are below {@code
 * compactionLiveFraction} of its records has its live records (each CRC-checked; bad ones are dropped) copied into
 * new segments, which are forced; the index entries that still point at the old copies move, then the old files are
 * deleted. Crash-safe at every step: until the delete both copies exist and hold the same bytes, and the index rebuild
 * keeps the later segment's. Concurrent gets keep working (a get that loses the race re-reads from the new location);
 * puts go on into the active segment, which is never compacted.
 *
 * <p>Victims are read through descriptors of their own ({@link Segment#openPrivateReader()}): an interrupt of the
 * compacting thread during a read closes the channel it reads through, and a victim's own channel is the one every
 * get of its still-indexed records uses, so an interrupt would leave blocks that Lookup reports unreadable. With a
 * private one the run just fails, the originals untouched. A shutdown stops a run with {@code stop}, between
 * records, not with an interrupt.
 */
final class SsdCompactor {
    /** A live record copied from {@code from} to {@code to} at {@code offset}. */
    record Moved(BlockKey key, IndexEntry from, Segment to, long offset) {
    }

    private SsdCompactor() {
    }

    static CompactionResult run(SsdTier tier, BooleanSupplier stop) {
        Map<Segment, List<Map.Entry<BlockKey, IndexEntry>>> victims = tier.compactionCandidates();
        if (victims.isEmpty()) {
            return new CompactionResult(0, 0, 0);
        }
        // One output segment per encoding: records are copied byte for byte, never re-encoded (INT8 is lossy).
        Map<PayloadEncoding, Segment> outs = new EnumMap<>(PayloadEncoding.class);
        List<Segment> written = new ArrayList<>();
        List<Moved> moved = new ArrayList<>();
        List<Segment> done = new ArrayList<>();
        long copied = 0;
        try {
            copying:
            for (Map.Entry<Segment, List<Map.Entry<BlockKey, IndexEntry>>> v : victims.entrySet()) {
                Segment from = v.getKey();
                try (FileChannel in = from.openPrivateReader()) {
                    for (Map.Entry<BlockKey, IndexEntry> live : v.getValue()) {
                        if (stop.getAsBoolean()) {
                            break copying;
                        }
                        ByteBuffer rec = from.read(in, live.getValue().offset);
                        copied += copy(tier, from, live, rec, outs, written, moved);
                    }
                }
                done.add(from);
            }
            // Durable before the originals go, whatever the fsync policy: this is the crash-safety of compaction.
            for (Segment s : written) {
                s.force();
            }
        } catch (IOException e) {
            // The originals are untouched and still indexed; the partial copies are dead space (or duplicates
            // that a rebuild resolves to the same bytes).
            throw new UncheckedIOException("compaction in " + tier.config().directory() + " failed", e);
        }
        // A half-copied victim (stopped) stays: its copied records move to their copies, the rest stay indexed.
        tier.swapIn(moved, done);
        long freed = 0;
        for (Segment v : done) {
            // A segment a Locate lease names stays until the lease ends (SsdTier.retire): a same-host reader may be
            // about to open it. Its records are already copied and out of the index.
            if (tier.leases().retire(v)) {
                freed += v.size();
            }
        }
        Segment.syncDirectory(tier.config().directory());
        tier.countWritten(copied);
        return new CompactionResult(done.size(), moved.size(), freed - copied);
    }

    /** Copies one live record (if its CRC holds) into the output segment of its encoding. @return bytes copied */
    private static long copy(SsdTier tier, Segment from, Map.Entry<BlockKey, IndexEntry> live, ByteBuffer rec,
                             Map<PayloadEncoding, Segment> outs, List<Segment> written, List<Moved> moved)
            throws IOException {
        boolean[] good = {false};
        tier.verifyOrDrop(live.getKey(), live.getValue(), rec, () -> good[0] = true);
        if (!good[0]) {
            return 0;
        }
        PayloadEncoding enc = from.header.encoding();
        Segment out = outs.get(enc);
        if (out == null || out.size() + rec.capacity() > tier.config().segmentBytes() && out.recordArea() > 0) {
            out = tier.newSegment(enc);
            outs.put(enc, out);
            written.add(out);
        }
        long at = out.append(rec);
        moved.add(new Moved(live.getKey(), live.getValue(), out, at));
        return rec.capacity();
    }
}
