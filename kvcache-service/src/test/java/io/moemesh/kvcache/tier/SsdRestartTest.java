package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.RECORD_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.block;
import static io.moemesh.kvcache.tier.TestBlocks.key;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.stream.Stream;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A restart serves the blocks the SSD tier held at its close: its tombstones ({@link DeadLog}) keep what it evicted or
 * removed from coming back and pushing out what it held; a surplus at open goes oldest record first.
 */
class SsdRestartTest {
    private static final int HEADER = 128;

    @TempDir
    Path dir;

    /** Segments of 4 records, capacity {@code records}. */
    private SsdConfig config(int records) {
        return SsdTierTest.config(dir).withCapacityBytes((long) records * RECORD_BYTES);
    }

    private static void assertHolds(SsdTier t, int from, int to) {
        for (int i = from; i < to; i++) {
            int n = i;
            assertThat(t.get(key(i))).as("block %d", i)
                    .hasValueSatisfying(b -> assertThat(b.sameContent(block(n))).isTrue());
        }
    }

    private static void assertLacks(SsdTier t, int from, int to) {
        for (int i = from; i < to; i++) {
            assertThat(t.contains(key(i))).as("block %d", i).isFalse();
        }
    }

    @Test
    void reopen_servesTheBlocksHeldAtClose_notTheOnesEvictedBefore() {
        try (SsdTier t = SsdTierTest.open(config(8))) {
            for (int i = 0; i < 16; i++) {
                t.put(block(i)); // 0..7 are evicted, their records still in the files
            }
            assertLacks(t, 0, 8);
        }
        try (SsdTier t = SsdTierTest.open(config(8))) {
            assertThat(t.blockCount()).isEqualTo(8);
            assertThat(t.openReport().tombstonedRecords()).isEqualTo(8);
            assertThat(t.stats().evictions()).as("nothing evicted at open").isZero();
            assertHolds(t, 8, 16);
            assertLacks(t, 0, 8);
        }
    }

    @Test
    void reopen_afterCompaction_servesTheBlocksHeldAtClose() throws IOException {
        try (SsdTier t = SsdTierTest.open(config(8).withCompactionLiveFraction(1.0))) {
            for (int i = 0; i < 16; i++) {
                t.put(block(i));
            }
            t.remove(key(9));
            // Segments 1 and 2 (blocks 0..7, evicted) go whole; segment 3 moves 8, 10 and 11 to a new segment.
            assertThat(t.compact().segmentsCompacted()).isEqualTo(3);
            t.remove(key(10)); // a copy let go of after the move
        }
        try (Stream<Path> s = Files.list(dir)) {
            assertThat(s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith("seg-0000000000000001")))
                    .as("a retired segment's files").isEmpty();
        }
        try (SsdTier t = SsdTierTest.open(config(8))) {
            assertThat(t.blockCount()).isEqualTo(6);
            assertThat(t.openReport().duplicateRecords()).isZero();
            assertHolds(t, 11, 16);
            assertHolds(t, 8, 9);
            assertLacks(t, 0, 8);
            assertLacks(t, 9, 11);
        }
    }

    @Test
    void reopen_withALowerCapacity_evictsTheOldestRecordsFirst_andForGood() {
        try (SsdTier t = SsdTierTest.open(config(16))) {
            for (int i = 0; i < 12; i++) {
                t.put(block(i));
            }
        }
        try (SsdTier t = SsdTierTest.open(config(8))) {
            assertThat(t.stats().evictions()).isEqualTo(4);
            assertHolds(t, 4, 12);
            assertLacks(t, 0, 4);
        }
        try (SsdTier t = SsdTierTest.open(config(16))) {
            assertThat(t.blockCount()).as("the surplus was tombstoned").isEqualTo(8);
            assertLacks(t, 0, 4);
        }
    }

    @Test
    void aVersion1Directory_isRead_itsTombstonesHonoured_andNewSegmentsAreVersion2() throws IOException {
        try (SsdTier t = SsdTierTest.open(config(16))) {
            for (int i = 0; i < 6; i++) {
                t.put(block(i));
            }
        }
        // What the previous build left: version-1 headers, no tombstone files.
        List<Path> old = SsdTierTest.segmentFiles(dir);
        for (Path seg : old) {
            rewriteHeader(seg, 1, null);
        }
        try (SsdTier t = SsdTierTest.open(config(16))) {
            assertThat(t.blockCount()).isEqualTo(6);
            assertThat(t.openReport().checksumFailures()).isZero();
            assertHolds(t, 0, 6);
            t.remove(key(1));
            t.put(block(6));
        }
        List<Path> now = SsdTierTest.segmentFiles(dir);
        assertThat(now).hasSize(old.size() + 1);
        assertThat(headerVersion(now.getLast())).isEqualTo(SegmentHeader.FORMAT_VERSION).isEqualTo(2);
        assertThat(headerVersion(now.getFirst())).as("an old segment is read, never rewritten").isEqualTo(1);
        try (SsdTier t = SsdTierTest.open(config(16))) {
            assertThat(t.blockCount()).isEqualTo(6);
            assertLacks(t, 1, 2);
            assertHolds(t, 2, 7);
        }
    }

    @Test
    void anIntactHeaderOfAnotherVersion_refusesTheOpen_andIsNotQuarantined() throws IOException {
        try (SsdTier t = SsdTierTest.open(config(16))) {
            t.put(block(1));
        }
        Path seg = SsdTierTest.segmentFiles(dir).getFirst();
        // Version 3 with a payload encoding this build does not know: intact (its CRC holds), just not ours.
        rewriteHeader(seg, 3, 99);
        assertThatThrownBy(() -> SsdTierTest.open(config(16)))
                .isInstanceOf(SegmentMismatchException.class)
                .hasMessageContaining(seg.toString())
                .hasMessageContaining("segment format version 3, this store reads versions 1 to 2");
        assertThat(seg).exists();
        assertThat(seg.resolveSibling(seg.getFileName() + ".corrupt")).doesNotExist();
    }

    @Test
    void aTornTombstone_isCutOff_andTheWholeOnesStillApply() throws IOException {
        try (SsdTier t = SsdTierTest.open(config(4))) {
            for (int i = 0; i < 8; i++) {
                t.put(block(i));
            }
        }
        Path dead = DeadLog.pathOf(dir, 1);
        assertThat(Files.size(dead)).isEqualTo(4L * DeadLog.ENTRY_BYTES);
        Files.write(dead, new byte[DeadLog.ENTRY_BYTES / 2], StandardOpenOption.APPEND); // a crash mid-append
        try (SsdTier t = SsdTierTest.open(config(4))) {
            assertThat(t.blockCount()).isEqualTo(4);
            assertHolds(t, 4, 8);
        }
        assertThat(Files.size(dead)).isEqualTo(4L * DeadLog.ENTRY_BYTES);
    }

    /** Rewrites a segment header's version (and encoding code) with a valid CRC32C, as another build would write. */
    static void rewriteHeader(Path seg, int version, Integer encodingCode) throws IOException {
        try (FileChannel ch = FileChannel.open(seg, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer h = ByteBuffer.allocate(HEADER).order(ByteOrder.LITTLE_ENDIAN);
            ch.read(h, 0);
            h.putInt(8, version);
            if (encodingCode != null) {
                h.putInt(40, encodingCode);
            }
            CRC32C crc = new CRC32C();
            crc.update(h.array(), 0, HEADER - 4);
            h.putInt(HEADER - 4, (int) crc.getValue());
            ch.write(h.position(0), 0);
        }
    }

    private static int headerVersion(Path seg) throws IOException {
        try (FileChannel ch = FileChannel.open(seg, StandardOpenOption.READ)) {
            ByteBuffer h = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);
            ch.read(h, 0);
            return h.getInt(8);
        }
    }
}
