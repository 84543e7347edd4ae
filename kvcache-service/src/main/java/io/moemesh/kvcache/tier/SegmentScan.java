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
 */
final class SegmentScan {
    private static final Logger log = LoggerFactory.getLogger(SegmentScan.class);
    private static final Pattern NAME = Pattern.compile("seg-(\\d{16})\\" + Segment.SUFFIX);

    record Result(List<Segment> segments, Map<BlockKey, IndexEntry> index, long nextSegmentId,
                  OpenReport report) {
    }

    private SegmentScan() {
    }

    static Result scan(Path dir, KvLayout layout, ModelFingerprint fingerprint) {
        List<Segment> opened = new ArrayList<>();
        try {
            Files.createDirectories(dir);
            TreeMap<Long, Path> files = new TreeMap<>();
            try (Stream<Path> list = Files.list(dir)) {
                for (Path p : (Iterable<Path>) list::iterator) {
                    String name = p.getFileName().toString();
                    Matcher m = NAME.matcher(name);
                    if (m.matches()) {
                        files.put(Long.parseLong(m.group(1)), p);
                    } else if (name.endsWith(Segment.SUFFIX + ".tmp")) {
                        // A segment whose creation did not finish: it never held a record.
                        Files.delete(p);
                    }
                }
            }
            Map<BlockKey, IndexEntry> index = new HashMap<>();
            List<Path> quarantined = new ArrayList<>();
            long failures = 0;
            long duplicates = 0;
            long torn = 0;
            long nextId = 1;
            for (Map.Entry<Long, Path> f : files.entrySet()) {
                Path path = f.getValue();
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
                    quarantined.add(to);
                    log.error("{}: {}; renamed to {} and skipped", path, e.getMessage(), to.getFileName());
                    continue;
                }
                checkCompatible(path, header, layout, fingerprint);
                long size = Files.size(path);
                Segment seg = Segment.open(path, header, size);
                opened.add(seg);
                int stride = seg.recordBytes;
                int payload = header.encoding().payloadBytes(layout);
                long pos = SegmentHeader.BYTES;
                for (; pos + stride <= size; pos += stride) {
                    ByteBuffer rec = seg.read(pos);
                    BlockKey key = Records.verify(rec, payload);
                    if (key == null) {
                        failures++;
                        seg.deadBytes += stride;
                        log.warn("{}: record at offset {} failed its checks (magic, length, CRC32C): dropped", path,
                                pos);
                        continue;
                    }
                    IndexEntry previous = index.put(key, new IndexEntry(seg, pos, Records.storedCrc(rec), null, false));
                    seg.liveBytes += stride;
                    if (previous != null) {
                        duplicates++;
                        previous.segment.liveBytes -= previous.segment.recordBytes;
                        previous.segment.deadBytes += previous.segment.recordBytes;
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
            OpenReport report = new OpenReport(opened.size(), index.size(), failures, duplicates, torn, quarantined);
            if (!opened.isEmpty() || !quarantined.isEmpty()) {
                log.info("SSD tier {}: {}", dir, report);
            }
            return new Result(opened, index, nextId, report);
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

    private static void checkCompatible(Path path, SegmentHeader h, KvLayout layout, ModelFingerprint fingerprint) {
        if (h.formatVersion() != SegmentHeader.FORMAT_VERSION) {
            throw new SegmentMismatchException(path + ": segment format version " + h.formatVersion()
                    + ", this store reads version " + SegmentHeader.FORMAT_VERSION
                    + "; use another directory or remove the old segments");
        }
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
