package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BooleanSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One run of {@link SsdTier#compact()}: every sealed segment whose live bytes are below {@code
 * compactionLiveFraction} of its records is a victim, taken one at a time (wholly dead ones first, they need no
 * copy): its live records are copied (each CRC-checked) into the run's output segments, the outputs are forced, the
 * victim is marked retired in its tombstones ({@link DeadLog}, forced), its index entries move to the copies, and its
 * file is deleted, before the next victim is read. So a run needs at most one victim's live records in extra space
 * (below {@code compactionLiveFraction} of a segment) beside the half-filled outputs, and whatever it did for the
 * victims before a failure stays done.
 *
 * <p>Failures: a live record that cannot be read (an I/O error, a short read) or fails its check is dropped from the
 * index and counted as a checksum failure, as a get that finds a bad record does, and the run goes on: a block that
 * cannot be copied must not stop compaction for good. A victim whose file cannot be opened is left for the next run.
 * A failure writing or forcing the outputs (a full disk), or an interrupt, ends the run: the copies of the victim in
 * progress are cut off the outputs (an output with no committed record is closed, unlisted and deleted), the victim
 * keeps its records indexed, and the run throws.
 *
 * <p>Crash-safe at every step: until the retired mark both copies exist and hold the same bytes, and the index
 * rebuild keeps the later segment's; once the mark is forced the rebuild deletes the victim. A block removed, evicted
 * or promoted while its copy waits for the swap-in has that copy tombstoned too ({@link SsdIndex#copied}), so a crash
 * before the swap-in does not bring it back from the copy. Concurrent gets keep
 * working (a get that loses the race re-reads from the new location); puts go on into the active segment, which is
 * never compacted.
 *
 * <p>Victims are read through descriptors of their own ({@link Segment#openPrivateReader()}): an interrupt of the
 * compacting thread during a read closes the channel it reads through, and a victim's own channel is the one every
 * get of its still-indexed records uses, so an interrupt would leave blocks that Lookup reports unreadable. With a
 * private one the run just fails, the originals untouched. A shutdown stops a run with {@code stop}, between
 * records, not with an interrupt: a victim copied whole is retired, a half-copied one has its copied records moved
 * (their old places tombstoned) and keeps the others.
 */
final class SsdCompactor {
    private static final Logger log = LoggerFactory.getLogger(SsdCompactor.class);

    /** A live record copied from {@code from} to {@code to} at {@code offset}. */
    record Moved(BlockKey key, IndexEntry from, Segment to, long offset) {
    }

    /** A sealed segment below the live fraction, with its live entries in offset order. */
    record Victim(Segment segment, List<Map.Entry<BlockKey, IndexEntry>> live) {
    }

    private enum Outcome { WHOLE, STOPPED, SKIPPED }

    private SsdCompactor() {
    }

    static CompactionResult run(SsdTier tier, BooleanSupplier stop) {
        List<Victim> victims = tier.compactionCandidates();
        Outputs outs = new Outputs(tier);
        int retired = 0;
        long movedCount = 0;
        long freed = 0;
        long copied = 0;
        for (Victim v : victims) {
            Segment from = v.segment();
            List<Moved> copies = new ArrayList<>();
            Outcome outcome;
            try {
                outcome = copyOut(tier, v, outs, copies, stop);
                // Durable before the victim is marked or its records' places tombstoned, whatever the fsync policy:
                // this is the crash-safety of compaction.
                outs.force();
            } catch (IOException e) {
                outs.rollBack(copies);
                tier.countWritten(copied);
                throw new UncheckedIOException("compaction in " + tier.config().directory() + " failed at "
                        + from.path.getFileName() + " after retiring " + retired + " segments", e);
            }
            outs.commit();
            long files = from.size() + from.deadLog().size(); // before the mark: the result is net of what it writes
            if (outcome == Outcome.STOPPED) {
                tombstoneMovedOut(tier, from, copies);
            } else if (outcome == Outcome.WHOLE) {
                markRetired(tier, from);
            }
            List<Tombstones.Dead> stale = new ArrayList<>();
            for (Moved m : tier.swapIn(copies, outcome == Outcome.WHOLE ? from : null)) {
                stale.add(new Tombstones.Dead(m.to(), m.offset(), m.key())); // let go of while it was copied
            }
            tier.tombstones().write(stale);
            movedCount += copies.size();
            copied += (long) copies.size() * from.recordBytes;
            if (outcome == Outcome.WHOLE) {
                retired++;
                // A segment a Locate lease names stays until the lease ends (SegmentLeases): a same-host reader may
                // be about to open it. Its records are already copied and out of the index, and it is marked retired.
                if (tier.leases().retire(from)) {
                    freed += files;
                }
            } else if (outcome == Outcome.STOPPED) {
                break;
            }
            // The tier's lease sweep waits for this run (it takes the compaction lock): a long run releases them.
            tier.releaseExpiredLeases();
        }
        if (!victims.isEmpty()) {
            Segment.syncDirectory(tier.config().directory());
        }
        tier.countWritten(copied);
        return new CompactionResult(retired, movedCount, freed - copied);
    }

    /**
     * Copies the victim's live records into the outputs (not forced yet), dropping the ones that cannot be read or
     * fail their check.
     *
     * @throws IOException when an output could not be written, or the thread was interrupted
     */
    private static Outcome copyOut(SsdTier tier, Victim v, Outputs outs, List<Moved> copies, BooleanSupplier stop)
            throws IOException {
        Segment from = v.segment();
        if (v.live().isEmpty()) {
            return Outcome.WHOLE;
        }
        FileChannel in;
        try {
            in = from.openPrivateReader();
        } catch (IOException e) {
            log.warn("compaction: cannot open {} ({}); its records stay where they are", from.path, e.toString());
            return Outcome.SKIPPED;
        }
        try (in) {
            for (Map.Entry<BlockKey, IndexEntry> live : v.live()) {
                if (stop.getAsBoolean()) {
                    return Outcome.STOPPED;
                }
                ByteBuffer rec;
                try {
                    rec = from.read(in, live.getValue().offset);
                } catch (IOException e) {
                    if (e instanceof ClosedChannelException || e instanceof InterruptedIOException
                            || Thread.currentThread().isInterrupted()) {
                        throw e; // the run's end (an interrupt closed the reader), not the record's fault
                    }
                    tier.dropUnreadable(live.getKey(), live.getValue(), e);
                    continue;
                }
                if (!tier.verifyOrDrop(live.getKey(), live.getValue(), rec)) {
                    continue;
                }
                Segment out = outs.outFor(from.header.encoding(), rec.capacity());
                Moved m = new Moved(live.getKey(), live.getValue(), out, out.append(rec));
                copies.add(m);
                // Noted, so a drop of the block before the swap-in tombstones this copy too: a restart would serve
                // it otherwise (a later segment's copy wins), bringing back a block let go of.
                Tombstones.Dead lateCopy = tier.index().copied(m.key(), m.from(), m.to(), m.offset());
                if (lateCopy != null) {
                    tier.tombstones().write(List.of(lateCopy)); // let go of between the listing and the copy
                }
            }
        }
        return Outcome.WHOLE;
    }

    /**
     * Marks a victim copied whole retired, forced before its entries move: a restart then deletes it even while a
     * lease keeps its file, so a copy the tier lets go of later cannot come back from it. A failure (a full disk) is
     * logged and the victim retired all the same: its copies are forced, and only a crash while a lease keeps the file
     * would bring such a record back.
     */
    private static void markRetired(SsdTier tier, Segment victim) {
        try {
            tier.tombstones().markRetired(victim);
        } catch (IOException e) {
            log.warn("compaction: marking {} retired failed ({}); retired all the same", victim.path, e.toString());
        }
    }

    /**
     * A half-copied victim stays: the places of its records that were copied are tombstoned (forced) before the
     * entries move, so a restart serves the copies, not both. A failure is logged and the entries move all the same
     * (the copies are forced; the rebuild prefers the later copy while neither is let go of).
     */
    private static void tombstoneMovedOut(SsdTier tier, Segment victim, List<Moved> copies) {
        try {
            tier.tombstones().writeForced(copies.stream()
                    .map(m -> new Tombstones.Dead(victim, m.from().offset, m.key())).toList());
        } catch (IOException e) {
            log.warn("compaction: tombstoning the records moved out of {} failed: {}", victim.path, e.toString());
        }
    }

    /** The run's output segments, one being filled per encoding, and what of each is committed. */
    private static final class Outputs {
        private final SsdTier tier;
        /** One output per encoding: records are copied byte for byte, never re-encoded (INT8 is lossy). */
        private final Map<PayloadEncoding, Segment> current = new EnumMap<>(PayloadEncoding.class);
        /** Every output of the run → its bytes up to the last committed victim's records (the header when none). */
        private final Map<Segment, Long> committed = new LinkedHashMap<>();

        Outputs(SsdTier tier) {
            this.tier = tier;
        }

        Segment outFor(PayloadEncoding enc, int recordBytes) throws IOException {
            Segment out = current.get(enc);
            if (out == null || out.size() + recordBytes > tier.config().segmentBytes() && out.recordArea() > 0) {
                out = tier.newSegment(enc);
                current.put(enc, out);
                committed.put(out, out.size());
            }
            return out;
        }

        void force() throws IOException {
            for (Map.Entry<Segment, Long> e : committed.entrySet()) {
                if (e.getKey().size() > e.getValue()) {
                    e.getKey().force();
                }
            }
        }

        void commit() {
            committed.replaceAll((s, c) -> s.size());
        }

        /**
         * After a failure: cuts the uncommitted copies off every output; one with no committed record is closed,
         * unlisted and deleted. A cut that fails leaves those copies as dead space, tombstoned.
         */
        void rollBack(List<Moved> uncommitted) {
            boolean interrupted = Thread.interrupted(); // the clean-up must not be interrupted in turn
            tier.index().forgetCopies(uncommitted); // cut off below, or tombstoned when the cut fails
            try {
                for (Iterator<Map.Entry<Segment, Long>> it = committed.entrySet().iterator(); it.hasNext(); ) {
                    Map.Entry<Segment, Long> e = it.next();
                    Segment s = e.getKey();
                    long keep = e.getValue();
                    if (keep == SegmentHeader.BYTES) {
                        tier.discard(s);
                        it.remove();
                        current.values().remove(s);
                    } else if (s.size() > keep) {
                        long cut = s.size() - keep;
                        try {
                            s.truncateTo(keep);
                        } catch (IOException failed) {
                            log.warn("compaction: cutting {} back to {} bytes failed ({}); its last {} bytes stay as "
                                    + "dead space", s.path, keep, failed.toString(), cut);
                            tier.index().countDead(s, cut);
                            tier.tombstones().write(uncommitted.stream().filter(m -> m.to() == s)
                                    .map(m -> new Tombstones.Dead(s, m.offset(), m.key())).toList());
                        }
                    }
                }
            } finally {
                if (interrupted) {
                    Thread.currentThread().interrupt();
                }
            }
        }
    }
}
