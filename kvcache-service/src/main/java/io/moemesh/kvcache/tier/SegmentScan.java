package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.model.kv.ModelFingerprint;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Rebuilds the SSD index from the segment files at open, oldest segment first so a later copy of a key wins
 * (compaction writes its copies into newer segments). Every record's CRC32C is checked. A partial record at a
 * segment's end (a crash mid-append) is truncated; a whole record that fails its CRC is dropped and counted; a segment
 * whose header is damaged is renamed {@code *.corrupt} and skipped; an intact segment of another model, layout or
 * format version throws {@link SegmentMismatchException} (the directory is misconfigured; nothing is deleted).
 *
 * <p>Tombstones ({@link DeadLog}) decide what was live: a record one names (evicted, removed, dropped, moved out) is
 * dead space, not indexed, and a segment compaction marked retired (kept for a {@code Locate} lease, or a crash came
 * before its delete) is deleted with its tombstones; a tombstone file whose segment is gone is deleted. The index
 * comes back in log order (segment id, offset), the order {@link SsdTier} hands the blocks to its eviction policy,
 * so a surplus at open (a capacity lowered since, or tombstones a crash lost) goes oldest record first.
 *
 * <p>A key found twice (a version-1 directory, a crash between forcing a compaction's copy and the retired mark, a
 * tombstone of a moved-out record that failed) is served from its later copy, and the earlier one comes back as
 * {@link Result#superseded()}, which the tier tombstones: left untombstoned, it would come back at a later restart
 * once the later copy was evicted or removed.
 */
final class SegmentScan {
    private static final Logger log = LoggerFactory.getLogger(SegmentScan.class);
    private static final Pattern NAME = Pattern.compile("seg-(\\d{16})\\" + Segment.SUFFIX);
    private static final Pattern DEAD_NAME = Pattern.compile("seg-(\\d{16})\\" + DeadLog.SUFFIX);

    /**
     * @param index      the live records in log order (segment id, then offset)
     * @param superseded the earlier copies of keys found twice, for the tier to tombstone (see the class comment)
     */
    record Result(List<Segment> segments, LinkedHashMap<BlockKey, IndexEntry> index, long nextSegmentId,
                  OpenReport report, List<Tombstones.Dead> superseded) {
    }

    private SegmentScan() {
    }

    static Result scan(Path dir, KvLayout layout, ModelFingerprint fingerprint) {
        List<Segment> opened = new ArrayList<>();
        try {
            OwnerOnly.createDirectories(dir);
            TreeMap<Long, Path> files = new TreeMap<>();
            Map<Long, Path> deadLogs = new HashMap<>();
            try (Stream<Path> list = Files.list(dir)) {
                for (Path p : (Iterable<Path>) list::iterator) {
                    String name = p.getFileName().toString();
                    Matcher m = NAME.matcher(name);
                    Matcher d = DEAD_NAME.matcher(name);
                    if (m.matches()) {
                        files.put(Long.parseLong(m.group(1)), p);
                    } else if (d.matches()) {
                        deadLogs.put(Long.parseLong(d.group(1)), p);
                    } else if (name.endsWith(Segment.SUFFIX + ".tmp")) {
                        // A segment whose creation did not finish: it never held a record.
                        Files.delete(p);
                    }
                }
            }
            // Deleted once every segment passed its checks: a refused open deletes nothing.
            List<Path> toDelete = new ArrayList<>();
            for (Map.Entry<Long, Path> d : deadLogs.entrySet()) {
                if (!files.containsKey(d.getKey())) {
                    // Its segment was deleted (compaction), a crash came before the tombstones' delete.
                    toDelete.add(d.getValue());
                }
            }
            LinkedHashMap<BlockKey, IndexEntry> index = new LinkedHashMap<>();
            List<Path> quarantined = new ArrayList<>();
            long failures = 0;
            long duplicates = 0;
            long torn = 0;
            long tombstoned = 0;
            List<Tombstones.Dead> superseded = new ArrayList<>();
            int retired = 0;
            long nextId = 1;
            for (Map.Entry<Long, Path> f : files.entrySet()) {
                Path path = f.getValue();
                Path deadPath = DeadLog.pathOf(dir, f.getKey());
                nextId = Math.max(nextId, f.getKey() + 1);
                SegmentHeader header;
                try {
                    header = readHeader(path);
                    if (header.segmentId() != f.getKey()) {
                        throw new CorruptSegmentException("header names segment " + header.segmentId());
                    }
                } catch (CorruptSegmentException e) {
                    Path to = path.resolveSibling(path.getFileName() + ".corrupt");
                    Files.move(path, to, StandardCopyOption.REPLACE_EXISTING);
                    toDelete.add(deadPath); // names records of a segment no longer read
                    quarantined.add(to);
                    log.error("{}: {}; renamed to {} and skipped", path, e.getMessage(), to.getFileName());
                    continue;
                } catch (SegmentMismatchException e) {
                    throw new SegmentMismatchException(path + ": " + e.getMessage());
                }
                checkCompatible(path, header, layout, fingerprint);
                DeadLog.Read dead = DeadLog.read(deadPath, f.getKey());
                if (dead.retired()) {
                    // Compaction copied its live records into newer segments before marking it.
                    toDelete.add(path);
                    toDelete.add(deadPath);
                    retired++;
                    log.info("{}: retired by compaction (its records are in newer segments): deleted", path);
                    continue;
                }
                if (dead.ignored() > 0) {
                    log.warn("{}: {} damaged tombstones ignored (the records they named come back)", deadPath,
                            dead.ignored());
                }
                OwnerOnly.restrict(path);
                OwnerOnly.restrict(deadPath);
                long size = Files.size(path);
                Segment seg = Segment.open(path, header, size, dead.bytes());
                opened.add(seg);
                int stride = seg.recordBytes;
                int payload = header.encoding().payloadBytes(layout);
                long pos = SegmentHeader.BYTES;
                for (; pos + stride <= size; pos += stride) {
                    ByteBuffer rec = seg.read(pos);
                    BlockKey key = Records.verify(rec, payload);
                    if (key == null ? dead.dead().containsKey(pos) : dead.names(pos, key)) {
                        // Let go of before the restart (a damaged one among them is no loss either).
                        tombstoned++;
                        seg.deadBytes += stride;
                        continue;
                    }
                    if (key == null) {
                        failures++;
                        seg.deadBytes += stride;
                        log.warn("{}: record at offset {} failed its checks (magic, length, CRC32C): dropped", path,
                                pos);
                        continue;
                    }
                    // Removed first: the later copy takes its place in the log order.
                    IndexEntry previous = index.remove(key);
                    index.put(key, new IndexEntry(seg, pos, Records.storedCrc(rec), null, false));
                    seg.liveBytes += stride;
                    if (previous != null) {
                        duplicates++;
                        previous.segment.liveBytes -= previous.segment.recordBytes;
                        previous.segment.deadBytes += previous.segment.recordBytes;
                        superseded.add(new Tombstones.Dead(previous.segment, previous.offset, key));
                    }
                }
                if (pos < size) {
                    torn += size - pos;
                    log.warn("{}: torn tail of {} bytes after offset {} (a crash during an append): truncated", path,
                            size - pos, pos);
                    seg.truncateTo(pos);
                    seg.force();
                }
            }
            for (Path p : toDelete) {
                Files.deleteIfExists(p); // a segment before its tombstones (the order they were added in)
            }
            OpenReport report = new OpenReport(opened.size(), index.size(), failures, duplicates, torn, quarantined,
                    tombstoned, retired);
            if (!opened.isEmpty() || !quarantined.isEmpty()) {
                log.info("SSD tier {}: {}", dir, report);
            }
            return new Result(opened, index, nextId, report, superseded);
        } catch (IOException e) {
            opened.forEach(Segment::close);
            throw new UncheckedIOException("opening the SSD tier in " + dir + " failed", e);
        } catch (RuntimeException e) {
            opened.forEach(Segment::close);
            throw e;
        }
    }

    private static SegmentHeader readHeader(Path path) throws IOException {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(SegmentHeader.BYTES);
            while (b.hasRemaining() && ch.read(b, b.position()) > 0) {
                // read until full or end of file
            }
            b.flip();
            return SegmentHeader.decode(b);
        }
    }

    /** The model and the layout; the version was checked by {@link SegmentHeader#decode}. */
    private static void checkCompatible(Path path, SegmentHeader h, KvLayout layout, ModelFingerprint fingerprint) {
        if (!h.fingerprint().equals(fingerprint)) {
            throw new SegmentMismatchException(path + ": segment of model fingerprint " + h.fingerprint().hex()
                    + ", this store serves " + fingerprint.hex() + "; use one directory per model");
        }
        if (h.layoutId() != layout.id() || !h.layout().equals(layout)) {
            throw new SegmentMismatchException(path + ": segment of " + h.layout() + " (layout id "
                    + Long.toHexString(h.layoutId()) + "), this store serves " + layout + " (layout id "
                    + Long.toHexString(layout.id()) + "); use one directory per model and layout");
        }
    }
}
