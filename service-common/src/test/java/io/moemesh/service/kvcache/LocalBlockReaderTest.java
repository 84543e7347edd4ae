package io.moemesh.service.kvcache;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.proto.kvcache.v1.BlockExtent;
import io.moemesh.proto.kvcache.v1.BlockLayout;
import io.moemesh.proto.kvcache.v1.LocateResponse;
import io.moemesh.proto.kvcache.v1.LocatedBlock;
import io.moemesh.proto.kvcache.v1.PayloadEncoding;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@link LocalBlockReader} on real segment-like files written with {@link KvRecordFormat} (the service's own tests
 * cover it against the real service): coalesced reads across records and files, the checks that stop a run, and
 * int8 records decoded as the format says.
 */
class LocalBlockReaderTest {
    /** 1 layer, 1 KV head, 2 tokens, head dim 4: 2 · 1 · 1 · 2 · 4 floats = 64 bytes a block, 4 rows. */
    static final BlockLayout LAYOUT = BlockLayout.newBuilder().setNumLayers(1).setNumKvHeads(1).setBlockTokens(2)
            .setHeadDim(4).build();
    static final int BLOCK = 64;
    static final int ROWS = 4;
    static final int HEADER = 128;

    @TempDir
    static Path dir;

    static byte[] key(int i) {
        byte[] k = new byte[32];
        new Random(i).nextBytes(k);
        return k;
    }

    static float[] floats(int i) {
        Random r = new Random(1000 + i);
        float[] f = new float[BLOCK / 4];
        for (int j = 0; j < f.length; j++) {
            f[j] = (float) r.nextGaussian();
        }
        return f;
    }

    static byte[] f32(float[] f) {
        ByteBuffer b = ByteBuffer.allocate(f.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(f);
        return b.array();
    }

    /** A record of block {@code i}, f32 or int8. */
    static ByteBuffer record(int i, boolean int8) {
        int payload = int8 ? KvRecordFormat.int8PayloadBytes(ROWS, 4) : BLOCK;
        ByteBuffer rec = ByteBuffer.allocate(KvRecordFormat.HEADER_BYTES + payload);
        KvRecordFormat.begin(rec, key(i), payload);
        if (int8) {
            KvRecordFormat.encodeInt8(ByteBuffer.wrap(f32(floats(i))).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer(),
                    ROWS, 4, rec);
        } else {
            rec.put(f32(floats(i)));
        }
        KvRecordFormat.seal(rec);
        return rec;
    }

    /** Writes records {@code from..from+n-1} after a 128-byte header into {@code name}; their located blocks. */
    static List<LocatedBlock> segment(String name, int segment, int from, int n, boolean int8) throws IOException {
        List<LocatedBlock> out = new ArrayList<>();
        try (FileChannel ch = FileChannel.open(dir.resolve(name), StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            long at = HEADER;
            ch.write(ByteBuffer.allocate(HEADER), 0);
            for (int i = from; i < from + n; i++) {
                ByteBuffer rec = record(i, int8);
                int len = rec.capacity();
                int crc = KvRecordFormat.storedCrc(rec);
                ch.write(rec, at);
                out.add(LocatedBlock.newBuilder().setExtent(BlockExtent.newBuilder().setSegment(segment).setOffset(at)
                        .setLength(len).setCrc32C(crc).setEncoding(int8 ? PayloadEncoding.PAYLOAD_ENCODING_INT8
                                : PayloadEncoding.PAYLOAD_ENCODING_F32)).build());
                at += len;
            }
        }
        return out;
    }

    /** Blocks 0..2 in a.kvseg, 3..4 in b.kvseg, then block 5 in memory. */
    static LocateResponse.Builder located(String a, String b) throws IOException {
        LocateResponse.Builder r = LocateResponse.newBuilder().setLayout(LAYOUT).setLeaseMillis(1000)
                .addSegmentPaths(dir.resolve(a).toString()).addSegmentPaths(dir.resolve(b).toString());
        r.addAllBlocks(segment(a, 0, 0, 3, false)).addAllBlocks(segment(b, 1, 3, 2, false))
                .addBlocks(LocatedBlock.newBuilder().setInMemory(true)).setPresentBlocks(6);
        return r;
    }

    static List<byte[]> keys(int n) {
        List<byte[]> k = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            k.add(key(i));
        }
        return k;
    }

    @Test
    void read_returnsEveryExtentsFloats_acrossSegments_andStopsAtTheInMemoryBlock_withoutAFailure() throws IOException {
        List<byte[]> out = new ArrayList<>();
        LocalBlockReader.Stop stop = new LocalBlockReader().read(located("a.kvseg", "b.kvseg").build(), keys(6), 0,
                BLOCK, out);
        assertThat(stop).isEqualTo(new LocalBlockReader.Stop(5, null));
        assertThat(out).hasSize(5);
        for (int i = 0; i < 5; i++) {
            assertThat(out.get(i)).as("block %d", i).isEqualTo(f32(floats(i)));
        }
        assertThat(new LocalBlockReader().read(located("a2.kvseg", "b2.kvseg").build(), keys(6), 5, BLOCK,
                new ArrayList<>())).as("from the in-memory block").isEqualTo(new LocalBlockReader.Stop(5, null));
    }

    @Test
    void int8Records_decodeAsTheFormatSays() throws IOException {
        LocateResponse r = LocateResponse.newBuilder().setLayout(LAYOUT).addSegmentPaths(
                dir.resolve("i.kvseg").toString()).addAllBlocks(segment("i.kvseg", 0, 0, 2, true)).setPresentBlocks(2)
                .build();
        List<byte[]> out = new ArrayList<>();
        assertThat(new LocalBlockReader().read(r, keys(2), 0, BLOCK, out)).isEqualTo(new LocalBlockReader.Stop(2,
                null));
        for (int i = 0; i < 2; i++) {
            ByteBuffer rec = record(i, true);
            ByteBuffer want = ByteBuffer.allocate(BLOCK);
            KvRecordFormat.decodeInt8(rec.slice(KvRecordFormat.HEADER_BYTES, rec.capacity() - 44), ROWS, 4, want);
            assertThat(out.get(i)).isEqualTo(want.array());
        }
    }

    static Stream<Arguments> failures() {
        return Stream.of(
                Arguments.of("segment b gone", (Damage) (a, b, r) -> Files.delete(b), 3, "NoSuchFileException"),
                Arguments.of("segment b cut inside block 4", (Damage) (a, b, r) -> {
                    try (FileChannel ch = FileChannel.open(b, StandardOpenOption.WRITE)) {
                        ch.truncate(HEADER + (KvRecordFormat.HEADER_BYTES + BLOCK) + 10);
                    }
                }, 3, "ends at"),
                Arguments.of("a payload byte of block 1 flipped", (Damage) (a, b, r) -> flip(a,
                        HEADER + (KvRecordFormat.HEADER_BYTES + BLOCK) + KvRecordFormat.HEADER_BYTES + 7), 1,
                        "CRC32C"),
                Arguments.of("the key of block 2 flipped", (Damage) (a, b, r) -> flip(a,
                        HEADER + 2L * (KvRecordFormat.HEADER_BYTES + BLOCK) + 5), 2, "another block"),
                Arguments.of("another CRC indexed for block 0", (Damage) (a, b, r) -> r.setBlocks(0,
                        r.getBlocks(0).toBuilder().setExtent(r.getBlocks(0).getExtent().toBuilder().setCrc32C(7))), 0,
                        "indexed"),
                Arguments.of("a relative segment path", (Damage) (a, b, r) -> r.setSegmentPaths(0, "a.kvseg"), 0,
                        "not an absolute path"),
                // uint32 / uint64 fields past the Java int's / long's sign bit
                Arguments.of("segment 2^31 for block 2", (Damage) (a, b, r) -> r.setBlocks(2, r.getBlocks(2)
                        .toBuilder().setExtent(r.getBlocks(2).getExtent().toBuilder().setSegment(Integer.MIN_VALUE))),
                        2, "segment 2147483648 is not among"),
                Arguments.of("length 2^32-1 for block 1", (Damage) (a, b, r) -> r.setBlocks(1, r.getBlocks(1)
                        .toBuilder().setExtent(r.getBlocks(1).getExtent().toBuilder().setLength(-1))), 1,
                        "a record of 4294967295 bytes"),
                Arguments.of("offset 2^63 for block 4", (Damage) (a, b, r) -> r.setBlocks(4, r.getBlocks(4)
                        .toBuilder().setExtent(r.getBlocks(4).getExtent().toBuilder().setOffset(Long.MIN_VALUE))), 4,
                        "offset 9223372036854775808 is past any file"));
    }

    interface Damage {
        void apply(Path a, Path b, LocateResponse.Builder r) throws IOException;
    }

    static void flip(Path file, long at) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer one = ByteBuffer.allocate(1);
            ch.read(one, at);
            ch.write(ByteBuffer.wrap(new byte[] {(byte) (one.get(0) ^ 1)}), at);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("failures")
    void aReadOrCheckThatFails_stopsTheRunAtThatBlock_withTheReason(String what, Damage damage, int at, String reason)
            throws IOException {
        String tag = Integer.toHexString(what.hashCode());
        LocateResponse.Builder r = located("a" + tag + ".kvseg", "b" + tag + ".kvseg");
        damage.apply(dir.resolve("a" + tag + ".kvseg"), dir.resolve("b" + tag + ".kvseg"), r);
        List<byte[]> out = new ArrayList<>();
        LocalBlockReader.Stop stop = new LocalBlockReader().read(r.build(), keys(6), 0, BLOCK, out);
        assertThat(stop.at()).isEqualTo(at);
        assertThat(stop.failure()).contains(reason);
        assertThat(out).hasSize(at);
        for (int i = 0; i < at; i++) {
            assertThat(out.get(i)).as("block %d before it", i).isEqualTo(f32(floats(i)));
        }
    }

    /** Blocks 0..(2·segments - 1), two per segment file {@code <tag>-<s>.kvseg}: one coalesced read per segment. */
    static LocateResponse.Builder spread(String tag, int segments) throws IOException {
        LocateResponse.Builder r = LocateResponse.newBuilder().setLayout(LAYOUT).setLeaseMillis(1000);
        for (int s = 0; s < segments; s++) {
            String name = tag + "-" + s + ".kvseg";
            r.addSegmentPaths(dir.resolve(name).toString()).addAllBlocks(segment(name, s, 2 * s, 2, false));
        }
        return r.setPresentBlocks(2 * segments);
    }

    @ParameterizedTest(name = "{0} thread(s)")
    @org.junit.jupiter.params.provider.ValueSource(ints = {1, 2, 3, 8})
    void parallelReads_keepBlockOrder_andStopAtTheFirstBadBlock_whateverTheThreads(int threads) throws IOException {
        LocalBlockReader reader = new LocalBlockReader(threads);
        List<byte[]> all = new ArrayList<>();
        assertThat(reader.read(spread("ok" + threads, 9).build(), keys(18), 0, BLOCK, all))
                .isEqualTo(new LocalBlockReader.Stop(18, null));
        for (int i = 0; i < 18; i++) {
            assertThat(all.get(i)).as("block %d", i).isEqualTo(f32(floats(i)));
        }

        // block 11 (segment 5's second) and block 14 (segment 7's first) damaged: the run stops at 11, whichever
        // thread read segment 7 first
        LocateResponse.Builder r = spread("bad" + threads, 9);
        flip(dir.resolve("bad" + threads + "-5.kvseg"), HEADER + (KvRecordFormat.HEADER_BYTES + BLOCK)
                + KvRecordFormat.HEADER_BYTES + 3);
        flip(dir.resolve("bad" + threads + "-7.kvseg"), HEADER + KvRecordFormat.HEADER_BYTES + 3);
        List<byte[]> out = new ArrayList<>();
        LocalBlockReader.Stop stop = reader.read(r.build(), keys(18), 0, BLOCK, out);
        assertThat(stop.at()).isEqualTo(11);
        assertThat(stop.failure()).contains("block 11", "CRC32C");
        assertThat(out).hasSize(11);
        for (int i = 0; i < 11; i++) {
            assertThat(out.get(i)).as("block %d before it", i).isEqualTo(f32(floats(i)));
        }
    }

    @Test
    void threads_belowOne_refusedWithTheValue() {
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> new LocalBlockReader(0))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("at least 1, got 0");
    }
}
