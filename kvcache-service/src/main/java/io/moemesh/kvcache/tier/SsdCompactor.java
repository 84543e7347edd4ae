package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/** One run of {@link SsdTier#compact()}: copy live records out of sparse sealed segments, then delete them. */
final class SsdCompactor {
    /** A live record copied from {@code from} to {@code to} at {@code offset}. */
    record Moved(BlockKey key, IndexEntry from, Segment to, long offset) {
    }

    private SsdCompactor() {
    }

    static CompactionResult run(SsdTier tier) {
        Map<Segment, List<Map.Entry<BlockKey, IndexEntry>>> victims = tier.compactionCandidates();
        if (victims.isEmpty()) {
            return new CompactionResult(0, 0, 0);
        }
        // One output segment per encoding: records are copied byte for byte, never re-encoded (INT8 is lossy).
        Map<PayloadEncoding, Segment> outs = new EnumMap<>(PayloadEncoding.class);
        List<Segment> written = new ArrayList<>();
        List<Moved> moved = new ArrayList<>();
        long copied = 0;
        try {
            for (Map.Entry<Segment, List<Map.Entry<BlockKey, IndexEntry>>> v : victims.entrySet()) {
                Segment from = v.getKey();
                for (Map.Entry<BlockKey, IndexEntry> live : v.getValue()) {
                    ByteBuffer rec;
                    try {
                        rec = from.read(live.getValue().offset);
                    } catch (ClosedChannelException e) {
                        throw new IllegalStateException("the SSD tier was closed during compaction", e);
                    }
                    boolean[] good = {false};
                    tier.verifyOrDrop(live.getKey(), live.getValue(), rec, () -> good[0] = true);
                    if (!good[0]) {
                        continue;
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
                    copied += rec.capacity();
                }
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
        tier.swapIn(moved, victims.keySet());
        long freed = 0;
        for (Segment v : victims.keySet()) {
            // A segment a Locate lease names stays until the lease ends (SsdTier.retire): a same-host reader may be
            // about to open it. Its records are already copied and out of the index.
            if (tier.leases().retire(v)) {
                freed += v.size();
            }
        }
        Segment.syncDirectory(tier.config().directory());
        tier.countWritten(copied);
        return new CompactionResult(victims.size(), moved.size(), freed - copied);
    }
}
