package io.moemesh.service.kvcache;

import io.moemesh.proto.kvcache.v1.BlockExtent;
import io.moemesh.proto.kvcache.v1.BlockLayout;
import io.moemesh.proto.kvcache.v1.LocateResponse;
import io.moemesh.proto.kvcache.v1.LocatedBlock;
import io.moemesh.proto.kvcache.v1.PayloadEncoding;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Reads the SSD blocks a {@code Locate} answer names straight from the kvcache-service's segment files (same host,
 * same uid): positional {@link FileChannel} reads into a reused direct buffer, adjacent records of one segment
 * coalesced into one read of up to {@link #MAX_READ_BYTES} (a prefix's records are contiguous: the kernel's readahead
 * and one system call per MiBs instead of per block), then each record checked exactly as the service's own read
 * checks it ({@link KvRecordFormat}: magic, length, the requested hash, the CRC32C over the same bytes, and the CRC the
 * service indexed) and decoded into the block's float32 bytes (int8 records as the service decodes them). The reads
 * of one run go to {@code threads} threads at once (the caller's and helpers'), each taking the next read in block
 * order with a buffer of its own: the kernel's copy out of the page cache, the CRC32C and the copy into the block
 * are each one core's work at 2-3 GB/s, and one thread alone restored at about half the disk's rate
 * (docs/performance.md, "KV-cache restore").
 *
 * <p>A run stops at the first block that is not an extent (a DRAM block: the caller fetches it with {@code Get}) or
 * whose read or check fails (file gone, short read, a record that does not check out): the caller falls back to
 * {@code Get} from that block on, where the service's own check drops a damaged record. Thread-safe: at most
 * {@link #MAX_IDLE} read buffers are kept, one per concurrent reader.
 */
public final class LocalBlockReader {
    /** Largest coalesced read (bytes): MiBs per system call, and a buffer that stays reusable. */
    public static final int MAX_READ_BYTES = 8 << 20;
    static final int MAX_IDLE = 4;
    private static final String SEGMENT_SUFFIX = ".kvseg";

    /** The name of the helper threads (benchmarks charge their CPU time to the reader). */
    public static final String THREAD_NAME = "kv-local-read";
    /** Threads that read a run by default: the caller and one helper (two cores read and check twice as fast). */
    public static final int DEFAULT_THREADS = 2;
    /**
     * The helpers of every reader: daemon threads, started when a run has more than one read and gone after a
     * minute idle (nothing to close).
     */
    private static final ExecutorService HELPERS = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, THREAD_NAME);
        t.setDaemon(true);
        return t;
    });

    private final ConcurrentLinkedQueue<ByteBuffer> idle = new ConcurrentLinkedQueue<>();
    private final AtomicInteger idleCount = new AtomicInteger();
    private final int threads;

    /** A reader with {@link #DEFAULT_THREADS} threads per run. */
    public LocalBlockReader() {
        this(DEFAULT_THREADS);
    }

    /**
     * @param threads how many threads read one run's coalesced reads at once (the caller's and {@code threads - 1}
     *                helpers), at least 1
     */
    public LocalBlockReader(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("local KV reader threads must be at least 1, got " + threads);
        }
        this.threads = threads;
    }

    /**
     * Where a run of local reads stopped.
     *
     * @param at      the index of the first block not read (the answer's {@code present_blocks} when all were)
     * @param failure why that block could not be read locally, or null when it is not an extent (or the run ended)
     */
    public record Stop(int at, String failure) {
    }

    /**
     * Reads blocks {@code from}, {@code from + 1}, ... of {@code located} while they are extents that read and check,
     * appending each block's float32 payload (exactly {@code blockBytes}) to {@code out}.
     *
     * @param hashes the 32-byte hashes the Locate asked for, same order
     */
    public Stop read(LocateResponse located, List<byte[]> hashes, int from, int blockBytes, List<byte[]> out) {
        int present = Math.min(located.getPresentBlocks(), Math.min(located.getBlocksCount(), hashes.size()));
        if (from >= present || located.getBlocks(from).getWhereCase() != LocatedBlock.WhereCase.EXTENT) {
            return new Stop(Math.min(from, present), null);
        }
        BlockLayout l = located.getLayout();
        long rows = 2L * l.getNumLayers() * l.getNumKvHeads() * l.getBlockTokens();
        if (rows * l.getHeadDim() * Float.BYTES != blockBytes) {
            return new Stop(from, "the answer's layout " + l.getNumLayers() + "x" + l.getNumKvHeads() + "x"
                    + l.getBlockTokens() + "x" + l.getHeadDim() + " does not have blocks of " + blockBytes + " bytes");
        }
        List<Group> groups = groups(located, from, present);
        int grouped = groups.isEmpty() ? from : groups.getLast().end();
        String bad = grouped < present && located.getBlocks(grouped).getWhereCase() == LocatedBlock.WhereCase.EXTENT
                ? badExtent(located.getBlocks(grouped).getExtent(), located.getSegmentPathsCount()) : null;
        if (groups.isEmpty()) {
            return new Stop(from, bad);
        }
        Map<Integer, FileChannel> files = new ConcurrentHashMap<>();
        Done[] done = new Done[groups.size()];
        AtomicInteger next = new AtomicInteger();
        AtomicInteger firstFailed = new AtomicInteger(Integer.MAX_VALUE);
        Runnable worker = () -> {
            ByteBuffer buf = take();
            try {
                for (int g = next.getAndIncrement(); g < groups.size() && g < firstFailed.get();
                     g = next.getAndIncrement()) {
                    Group group = groups.get(g);
                    if (group.bytes() > buf.capacity()) {
                        give(buf);
                        buf = ByteBuffer.allocateDirect((int) group.bytes());
                    }
                    done[g] = readAndCheck(located, hashes, group, (int) rows, l.getHeadDim(), blockBytes, files, buf);
                    if (done[g].failure() != null) {
                        firstFailed.accumulateAndGet(g, Math::min);
                    }
                }
            } finally {
                give(buf);
            }
        };
        List<Future<?>> helpers = new ArrayList<>();
        try {
            for (int t = 1; t < Math.min(threads, groups.size()); t++) {
                helpers.add(HELPERS.submit(worker));
            }
            worker.run();
            for (Future<?> f : helpers) {
                f.get();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            helpers.forEach(f -> f.cancel(true));
            return new Stop(from, "interrupted while reading");
        } catch (ExecutionException e) {
            throw new IllegalStateException("local KV read failed: " + e.getCause(), e.getCause());
        } finally {
            for (FileChannel f : files.values()) {
                try {
                    f.close();
                } catch (IOException ignored) {
                    // only read from
                }
            }
        }
        // In block order: every group before the first failed one was read (workers take groups in order).
        for (int g = 0; g < groups.size(); g++) {
            Done d = done[g];
            out.addAll(d.blocks());
            if (d.failure() != null) {
                return new Stop(groups.get(g).start() + d.blocks().size(), d.failure());
            }
        }
        return new Stop(grouped, bad == null ? null : "block " + grouped + ": " + bad);
    }

    /**
     * Why an extent cannot be read as the service's answer claims, or null: its fields are unsigned on the wire
     * (a segment or length of 2^31 or more, an offset of 2^63 or more read as negative here), and a record is at
     * most {@link #MAX_READ_BYTES}.
     */
    static String badExtent(BlockExtent e, int segments) {
        if (Integer.toUnsignedLong(e.getSegment()) >= segments) {
            return "segment " + Integer.toUnsignedString(e.getSegment()) + " is not among the answer's " + segments
                    + " segment paths";
        }
        if (e.getOffset() < 0) {
            return "offset " + Long.toUnsignedString(e.getOffset()) + " is past any file";
        }
        if (e.getLength() <= 0 || e.getLength() > MAX_READ_BYTES) {
            return "a record of " + Integer.toUnsignedString(e.getLength()) + " bytes is not one of a block (at most "
                    + MAX_READ_BYTES + ")";
        }
        return null;
    }

    /** Records {@code [start, end)} of one segment, back to back in the file: {@code bytes} from the first's offset. */
    private record Group(int start, int end, long bytes) {
    }

    /** A group's checked blocks, in order, and why the block after them failed (null when all did). */
    private record Done(List<byte[]> blocks, String failure) {
    }

    /**
     * The extents from {@code from} on, up to the first block that is not one (or is a {@link #badExtent}), cut into
     * coalesced reads.
     */
    private static List<Group> groups(LocateResponse located, int from, int present) {
        List<Group> groups = new ArrayList<>();
        int i = from;
        int segments = located.getSegmentPathsCount();
        while (i < present && located.getBlocks(i).getWhereCase() == LocatedBlock.WhereCase.EXTENT
                && badExtent(located.getBlocks(i).getExtent(), segments) == null) {
            BlockExtent first = located.getBlocks(i).getExtent();
            int end = i + 1;
            long bytes = first.getLength();
            while (end < present && located.getBlocks(end).getWhereCase() == LocatedBlock.WhereCase.EXTENT) {
                BlockExtent e = located.getBlocks(end).getExtent();
                if (badExtent(e, segments) != null || e.getSegment() != first.getSegment() || e.getOffset() != first.getOffset() + bytes
                        || bytes + e.getLength() > MAX_READ_BYTES) {
                    break;
                }
                bytes += e.getLength();
                end++;
            }
            groups.add(new Group(i, end, bytes));
            i = end;
        }
        return groups;
    }

    /** Reads one group into {@code buf} and checks and decodes its records, in order, up to the first bad one. */
    private static Done readAndCheck(LocateResponse located, List<byte[]> hashes, Group group, int rows, int headDim,
                                     int blockBytes, Map<Integer, FileChannel> files, ByteBuffer buf) {
        BlockExtent first = located.getBlocks(group.start()).getExtent();
        String failure = readGroup(located, first, group.bytes(), files, buf);
        if (failure != null) {
            return new Done(List.of(), failure);
        }
        List<byte[]> blocks = new ArrayList<>(group.end() - group.start());
        int at = 0;
        for (int b = group.start(); b < group.end(); b++) {
            BlockExtent e = located.getBlocks(b).getExtent();
            ByteBuffer rec = buf.slice(at, e.getLength()).order(ByteOrder.LITTLE_ENDIAN);
            at += e.getLength();
            byte[] block = new byte[blockBytes];
            String bad = check(rec, e, hashes.get(b), rows, headDim, block);
            if (bad != null) {
                return new Done(blocks, "block " + b + " at offset " + e.getOffset() + " of "
                        + located.getSegmentPaths(e.getSegment()) + ": " + bad);
            }
            blocks.add(block);
        }
        return new Done(blocks, null);
    }

    /** Reads {@code bytes} from {@code first}'s offset into {@code buf}; why it failed, or null. */
    private static String readGroup(LocateResponse located, BlockExtent first, long bytes,
                                    Map<Integer, FileChannel> files, ByteBuffer buf) {
        if (first.getSegment() >= located.getSegmentPathsCount()) {
            return "segment " + first.getSegment() + " is not among the answer's " + located.getSegmentPathsCount()
                    + " segment paths";
        }
        String name = located.getSegmentPaths(first.getSegment());
        Path path = Path.of(name);
        if (!path.isAbsolute() || !name.endsWith(SEGMENT_SUFFIX)) {
            return "segment path " + name + " is not an absolute path of a " + SEGMENT_SUFFIX + " file";
        }
        try {
            FileChannel ch = files.get(first.getSegment());
            if (ch == null) {
                FileChannel opened = FileChannel.open(path, StandardOpenOption.READ);
                ch = files.putIfAbsent(first.getSegment(), opened);
                if (ch == null) {
                    ch = opened;
                } else {
                    opened.close(); // another worker opened it first
                }
            }
            buf.clear().limit((int) bytes);
            long at = first.getOffset();
            while (buf.hasRemaining()) {
                int n = ch.read(buf, at + buf.position());
                if (n < 0) {
                    return name + " ends at " + (at + buf.position()) + ", inside the records at " + at + " .. "
                            + (at + bytes);
                }
            }
            buf.position(0);
            return null;
        } catch (IOException e) {
            return "reading " + name + " failed: " + e;
        }
    }

    /** Checks one record as the service does and decodes its payload into {@code block}; why it failed, or null. */
    private static String check(ByteBuffer rec, BlockExtent e, byte[] hash, int rows, int headDim, byte[] block) {
        int payload = switch (e.getEncoding()) {
            case PAYLOAD_ENCODING_F32 -> block.length;
            case PAYLOAD_ENCODING_INT8 -> KvRecordFormat.int8PayloadBytes(rows, headDim);
            default -> -1;
        };
        if (payload < 0) {
            return "unknown payload encoding " + e.getEncodingValue();
        }
        if (e.getLength() != KvRecordFormat.HEADER_BYTES + payload) {
            return "extent of " + e.getLength() + " bytes for a record of " + (KvRecordFormat.HEADER_BYTES + payload);
        }
        if (!KvRecordFormat.hasKey(rec, hash)) {
            return "the record holds another block";
        }
        if (KvRecordFormat.storedCrc(rec) != e.getCrc32C()) {
            return "the record's CRC32C is not the one the service indexed";
        }
        boolean intact = e.getEncoding() == PayloadEncoding.PAYLOAD_ENCODING_F32
                ? KvRecordFormat.verifyInto(rec, payload, block)
                : KvRecordFormat.verify(rec, payload);
        if (!intact) {
            return "CRC32C (or magic, or length) mismatch";
        }
        if (e.getEncoding() == PayloadEncoding.PAYLOAD_ENCODING_INT8) {
            KvRecordFormat.decodeInt8(rec.slice(KvRecordFormat.HEADER_BYTES, payload), rows, headDim,
                    ByteBuffer.wrap(block));
        }
        return null;
    }

    private ByteBuffer take() {
        ByteBuffer b = idle.poll();
        if (b != null) {
            idleCount.decrementAndGet();
            return b;
        }
        return ByteBuffer.allocateDirect(MAX_READ_BYTES);
    }

    private void give(ByteBuffer b) {
        if (b.capacity() == MAX_READ_BYTES && idleCount.incrementAndGet() <= MAX_IDLE) {
            idle.offer(b);
        } else if (b.capacity() == MAX_READ_BYTES) {
            idleCount.decrementAndGet();
        }
    }
}
