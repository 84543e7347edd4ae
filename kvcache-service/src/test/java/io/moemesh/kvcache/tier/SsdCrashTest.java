package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.RECORD_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.block;
import static io.moemesh.kvcache.tier.TestBlocks.key;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** What a crash or a damaged disk leaves behind is detected; nothing partial or corrupt is ever served. */
class SsdCrashTest {
    private static final int HEADER = 128;
    private static final int BLOCKS = 5;

    @TempDir
    Path dir;

    private SsdConfig config(Path d) {
        return SsdConfig.defaults(d, 1 << 20).withFsync(FsyncPolicy.ALWAYS);
    }

    private Path writeOneSegment(Path d) throws IOException {
        try (SsdTier t = SsdTierTest.open(config(d))) {
            for (int i = 0; i < BLOCKS; i++) {
                t.put(block(i));
            }
        }
        List<Path> files = SsdTierTest.segmentFiles(d);
        assertThat(files).hasSize(1);
        return files.getFirst();
    }

    private static void assertIntact(SsdTier t, int... blocks) {
        for (int i : blocks) {
            assertThat(t.get(key(i))).as("block %d", i)
                    .hasValueSatisfying(b -> assertThat(b.sameContent(block(i))).isTrue());
        }
    }

    @Test
    void truncatingTheLastRecordAtEveryByteOffset_dropsOnlyIt_andTruncatesTheTornTail() throws IOException {
        byte[] full = Files.readAllBytes(writeOneSegment(dir.resolve("orig")));
        int lastStart = HEADER + (BLOCKS - 1) * RECORD_BYTES;
        assertThat(full).hasSize(lastStart + RECORD_BYTES);
        for (int cut = lastStart; cut < full.length; cut++) {
            Path d = dir.resolve("cut" + cut);
            Files.createDirectories(d);
            Path seg = d.resolve("seg-0000000000000001.kvseg");
            Files.write(seg, Arrays.copyOf(full, cut));
            try (SsdTier t = SsdTierTest.open(config(d))) {
                assertThat(t.openReport().tornBytesTruncated()).isEqualTo(cut - lastStart);
                assertThat(t.openReport().checksumFailures()).isZero();
                assertThat(t.blockCount()).isEqualTo(BLOCKS - 1);
                assertThat(t.get(key(BLOCKS - 1))).isEmpty();
                assertIntact(t, 0, 1, 2, 3);
                // The torn tail is gone, so the next records line up again after a reopen.
                assertThat(Files.size(seg)).isEqualTo(lastStart);
                t.put(block(BLOCKS - 1));
            }
            try (SsdTier t = SsdTierTest.open(config(d))) {
                assertIntact(t, 0, 1, 2, 3, 4);
            }
            deleteTree(d);
        }
    }

    /** Regions of record 2: magic, key, payload length, CRC, payload (first, middle, last byte). */
    @ParameterizedTest(name = "{0} at byte {1}")
    @CsvSource({"magic, 0", "key, 4", "key, 35", "length, 36", "length, 39", "crc, 40", "crc, 43", "payload, 44",
        "payload, 300", "payload, 555"})
    void aFlippedByteInARecord_isDetectedAtOpen_andOnlyThatBlockDropped(String region, int at) throws IOException {
        Path seg = writeOneSegment(dir);
        flip(seg, HEADER + 2L * RECORD_BYTES + at);
        try (SsdTier t = SsdTierTest.open(config(dir))) {
            assertThat(t.openReport().checksumFailures()).as(region).isEqualTo(1);
            assertThat(t.stats().checksumFailures()).isEqualTo(1);
            assertThat(t.get(key(2))).isEmpty();
            assertIntact(t, 0, 1, 3, 4);
            assertThat(t.deadBytes()).isEqualTo(RECORD_BYTES);
        }
    }

    @ParameterizedTest(name = "{0} at byte {1}")
    @CsvSource({"magic, 1", "key, 20", "length, 37", "crc, 41", "payload, 44", "payload, 555"})
    void aFlippedByteInARecord_isDetectedOnRead_countedAndTheRecordDropped(String region, int at) throws IOException {
        try (SsdTier t = SsdTierTest.open(config(dir))) {
            for (int i = 0; i < BLOCKS; i++) {
                t.put(block(i));
            }
            flip(SsdTierTest.segmentFiles(dir).getFirst(), HEADER + 2L * RECORD_BYTES + at);
            assertThat(t.get(key(2))).as(region).isEmpty();
            assertThat(t.stats().checksumFailures()).isEqualTo(1);
            assertThat(t.contains(key(2))).isFalse();
            assertThat(t.get(key(2))).isEmpty();
            assertThat(t.stats().checksumFailures()).isEqualTo(1);
            assertIntact(t, 0, 1, 3, 4);
            assertThat(t.usedBytes()).isEqualTo((BLOCKS - 1L) * RECORD_BYTES);
        }
    }

    @Test
    void aZeroFilledTailRecord_isDroppedAndCounted() throws IOException {
        Path seg = writeOneSegment(dir);
        try (FileChannel ch = FileChannel.open(seg, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(RECORD_BYTES), Files.size(seg));
        }
        try (SsdTier t = SsdTierTest.open(config(dir))) {
            assertThat(t.openReport().checksumFailures()).isEqualTo(1);
            assertThat(t.blockCount()).isEqualTo(BLOCKS);
        }
    }

    @Test
    void aDamagedSegmentHeader_quarantinesThatSegment_andTheOthersServe() throws IOException {
        SsdConfig c = config(dir).withSegmentBytes(HEADER + 2L * RECORD_BYTES);
        try (SsdTier t = SsdTierTest.open(c)) {
            for (int i = 0; i < 6; i++) {
                t.put(block(i));
            }
        }
        List<Path> files = SsdTierTest.segmentFiles(dir);
        assertThat(files).hasSize(3);
        flip(files.get(1), 50);
        try (SsdTier t = SsdTierTest.open(c)) {
            assertThat(t.openReport().quarantined()).containsExactly(
                    files.get(1).resolveSibling(files.get(1).getFileName() + ".corrupt"));
            assertIntact(t, 0, 1, 4, 5);
            assertThat(t.contains(key(2))).isFalse();
            assertThat(t.contains(key(3))).isFalse();
            // New segments never reuse the quarantined one's id.
            t.put(block(2));
        }
        assertThat(SsdTierTest.segmentFiles(dir)).hasSize(3);
    }

    @Test
    void anUnfinishedSegmentCreation_isRemovedAtOpen() throws IOException {
        writeOneSegment(dir);
        Path tmp = dir.resolve("seg-0000000000000002.kvseg.tmp");
        Files.write(tmp, new byte[17]);
        try (SsdTier t = SsdTierTest.open(config(dir))) {
            assertThat(t.blockCount()).isEqualTo(BLOCKS);
        }
        assertThat(tmp).doesNotExist();
    }

    static void flip(Path file, long at) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(1);
            ch.read(b, at);
            b.put(0, (byte) (b.get(0) ^ 0x5a));
            b.position(0);
            ch.write(b, at);
        }
    }

    private static void deleteTree(Path d) throws IOException {
        try (var s = Files.list(d)) {
            for (Path p : s.toList()) {
                Files.delete(p);
            }
        }
        Files.delete(d);
    }
}
