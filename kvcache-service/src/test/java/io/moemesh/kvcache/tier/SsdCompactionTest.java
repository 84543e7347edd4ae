package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.RECORD_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.block;
import static io.moemesh.kvcache.tier.TestBlocks.key;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class SsdCompactionTest {
    private static final int HEADER = 128;

    @TempDir
    Path dir;
    /** A second directory (a saved or killed copy of the tier's files), deleted after each test as dir is. */
    @TempDir
    Path copies;

    private SsdConfig config() {
        return config(dir);
    }

    private static SsdConfig config(Path d) {
        return SsdConfig.defaults(d, 1 << 20).withSegmentBytes(HEADER + 4L * RECORD_BYTES)
                .withFsync(FsyncPolicy.NEVER);
    }

    @Test
    void compact_rewritesSparseSealedSegments_reclaimsTheirSpace_andKeepsEveryLiveBlock() throws IOException {
        try (SsdTier t = SsdTierTest.open(config())) {
            for (int i = 0; i < 12; i++) {
                t.put(block(i));
            }
            // Segment 1 keeps 1 of 4 (below half), segment 2 keeps 3 of 4, segment 3 is active.
            for (int i : new int[] {0, 1, 2, 4}) {
                t.remove(key(i));
            }
            long before = t.diskBytes();
            CompactionResult r = t.compact();
            assertThat(r.segmentsCompacted()).isEqualTo(1);
            assertThat(r.recordsMoved()).isEqualTo(1);
            assertThat(r.bytesReclaimed()).isEqualTo(HEADER + 3L * RECORD_BYTES + 3L * DeadLog.ENTRY_BYTES);
            // Segment 1 goes with its 3 tombstones; the new segment holds block 3.
            assertThat(t.diskBytes()).isEqualTo(before - HEADER - 4L * RECORD_BYTES - 3L * DeadLog.ENTRY_BYTES
                    + HEADER + RECORD_BYTES);
            assertThat(t.deadBytes()).isEqualTo(RECORD_BYTES);
            for (int i : new int[] {3, 5, 6, 7, 8, 9, 10, 11}) {
                assertThat(t.get(key(i))).hasValueSatisfying(b -> assertThat(b.sameContent(block(i))).isTrue());
            }
            assertThat(t.compact().segmentsCompacted()).isZero();
        }
        assertThat(SsdTierTest.segmentFiles(dir)).extracting(p -> p.getFileName().toString())
                .containsExactly("seg-0000000000000002.kvseg", "seg-0000000000000003.kvseg",
                        "seg-0000000000000004.kvseg");
        try (SsdTier t = SsdTierTest.open(config())) {
            // Block 4's record is still in the uncompacted segment 2, but its tombstone keeps it removed.
            assertThat(t.blockCount()).isEqualTo(8);
            assertThat(t.contains(key(4))).isFalse();
            assertThat(t.contains(key(0))).isFalse();
            assertThat(t.openReport().duplicateRecords()).isZero();
        }
    }

    @Test
    void aCrashAfterTheCopyBeforeTheDelete_leavesDuplicates_thatReopenResolvesToTheSameBlocks() throws IOException {
        Path saved = copies;
        try (SsdTier t = SsdTierTest.open(config())) {
            for (int i = 0; i < 8; i++) {
                t.put(block(i));
            }
            t.remove(key(0));
            t.remove(key(1));
            t.remove(key(2));
            Path first = SsdTierTest.segmentFiles(dir).getFirst();
            Files.copy(first, saved.resolve(first.getFileName()));
            Path tombstones = DeadLog.pathOf(dir, 1);
            Files.copy(tombstones, saved.resolve(tombstones.getFileName()));
            t.compact();
        }
        // Put the compacted segment (and its tombstones) back, as if the process died between forcing the copy and
        // marking the segment retired.
        try (var s = Files.list(saved)) {
            for (Path p : s.toList()) {
                Files.move(p, dir.resolve(p.getFileName()));
            }
        }
        try (SsdTier t = SsdTierTest.open(config())) {
            assertThat(t.openReport().duplicateRecords()).isEqualTo(1);
            assertThat(t.openReport().tombstonedRecords()).isEqualTo(3);
            assertThat(t.blockCount()).isEqualTo(5); // the removed blocks of the old copy stay removed
            for (int i = 3; i < 8; i++) {
                int n = i;
                assertThat(t.get(key(i))).hasValueSatisfying(b -> assertThat(b.sameContent(block(n))).isTrue());
            }
            // The old copy of block 3 is dead space now; compaction clears it for good.
            assertThat(t.compact().segmentsCompacted()).isGreaterThanOrEqualTo(1);
            assertThat(t.get(key(3))).isPresent();
            assertThat(dir.resolve("seg-0000000000000001.kvseg")).doesNotExist();
        }
    }

    @Test
    void aDuplicateLeftByACrash_hasItsEarlierCopyTombstonedAtOpen_soARemovedBlockStaysGoneAfterTheNextRestart()
            throws IOException {
        Path saved = copies;
        try (SsdTier t = SsdTierTest.open(config())) {
            for (int i = 0; i < 8; i++) {
                t.put(block(i));
            }
            for (int i = 0; i < 3; i++) {
                t.remove(key(i));
            }
            Files.copy(SsdTierTest.segmentFiles(dir).getFirst(), saved.resolve("seg-0000000000000001.kvseg"));
            Files.copy(DeadLog.pathOf(dir, 1), saved.resolve(DeadLog.pathOf(dir, 1).getFileName()));
            t.compact(); // block 3 moves out of segment 1, which is deleted
        }
        // Segment 1 and its tombstones back: the process died between forcing the copy and the retired mark.
        try (var s = Files.list(saved)) {
            for (Path p : s.toList()) {
                Files.move(p, dir.resolve(p.getFileName()));
            }
        }
        try (SsdTier t = SsdTierTest.open(config())) {
            assertThat(t.openReport().duplicateRecords()).isEqualTo(1);
            assertThat(t.remove(key(3))).isTrue(); // its later copy, the one indexed
        }
        try (SsdTier t = SsdTierTest.open(config())) {
            assertThat(t.contains(key(3))).as("not back from segment 1's earlier copy").isFalse();
            assertThat(t.blockCount()).isEqualTo(4);
        }
    }

    @Test
    void compaction_underConcurrentReads_neverServesAMissOrWrongBytesForALiveBlock() throws Exception {
        SsdConfig c = config().withCompactionLiveFraction(1.0);
        try (SsdTier t = SsdTierTest.open(c)) {
            int blocks = 40;
            for (int i = 0; i < blocks; i++) {
                t.put(block(i));
            }
            AtomicBoolean stop = new AtomicBoolean();
            AtomicLong reads = new AtomicLong();
            ExecutorService pool = Executors.newFixedThreadPool(3);
            try {
                List<Future<?>> readers = new ArrayList<>();
                for (int r = 0; r < 3; r++) {
                    int seed = r;
                    readers.add(pool.submit(() -> {
                        int i = seed;
                        while (!stop.get()) {
                            int n = 2 * (i++ % (blocks / 2)); // the even blocks are never removed
                            assertThat(t.get(key(n))).as("block %d", n)
                                    .hasValueSatisfying(b -> assertThat(b.sameContent(block(n))).isTrue());
                            reads.incrementAndGet();
                        }
                        return null;
                    }));
                }
                int compactions = 0;
                for (int round = 0; round < 40; round++) {
                    // Re-put some odd blocks: their old records die, so the segments that also hold even blocks
                    // fall below the live fraction and the even blocks move while the readers read them.
                    for (int k = 1 + 2 * (round % 5); k < blocks; k += 10) {
                        t.remove(key(k));
                        t.put(block(k));
                    }
                    compactions += t.compact().segmentsCompacted();
                }
                stop.set(true);
                for (Future<?> f : readers) {
                    f.get();
                }
                assertThat(compactions).isGreaterThan(40);
                assertThat(reads.get()).isPositive();
            } finally {
                pool.shutdownNow();
            }
            assertThat(t.stats().checksumFailures()).isZero();
            assertThat(t.blockCount()).isEqualTo(blocks);
            assertThat(t.usedBytes()).isEqualTo(blocks * (long) RECORD_BYTES);
            for (int i = 0; i < blocks; i++) {
                int n = i;
                assertThat(t.get(key(i))).hasValueSatisfying(b -> assertThat(b.sameContent(block(n))).isTrue());
            }
        }
    }

    /** 12 blocks in 3 segments of 4; blocks 0 and 4 removed, so both sealed segments are victims at fraction 1. */
    private SsdTier twoVictims() {
        SsdTier t = SsdTierTest.open(config().withCompactionLiveFraction(1.0));
        for (int i = 0; i < 12; i++) {
            t.put(block(i));
        }
        t.remove(key(0));
        t.remove(key(4));
        return t;
    }

    private static void assertEveryLiveBlockReadable(SsdTier t) {
        for (int i = 0; i < 12; i++) {
            int n = i;
            if (n == 0 || n == 4) {
                assertThat(t.get(key(n))).isEmpty();
            } else {
                assertThat(t.get(key(n))).as("block %d", n)
                        .hasValueSatisfying(b -> assertThat(b.sameContent(block(n))).isTrue());
            }
        }
    }

    @Test
    void compaction_interruptedWhileReadingAVictim_failsAlone_andEveryLiveBlockStaysReadable() {
        try (SsdTier t = twoVictims()) {
            // The interrupt hits the compactor's first read. Were it reading through the victim's own channel, the
            // interrupt would close that channel while its records stay indexed: Lookup would report blocks that
            // Get then misses.
            Thread.currentThread().interrupt();
            try {
                assertThatThrownBy(t::compact).isInstanceOf(UncheckedIOException.class);
            } finally {
                Thread.interrupted();
            }
            assertEveryLiveBlockReadable(t);
            assertThat(t.blockCount()).isEqualTo(10);

            assertThat(t.compact().segmentsCompacted()).isEqualTo(2);
            assertEveryLiveBlockReadable(t);
            assertThat(t.stats().checksumFailures()).isZero();
        }
    }

    @Test
    void compaction_stoppedBetweenRecords_retiresOnlyTheVictimsCopiedWhole_andEveryLiveBlockStaysReadable() {
        try (SsdTier t = twoVictims()) {
            AtomicInteger checks = new AtomicInteger();
            // Each victim has 3 live records: the 5th check comes after one victim and 1 record of the other.
            CompactionResult r = t.compact(() -> checks.incrementAndGet() >= 5);

            assertThat(r.segmentsCompacted()).isEqualTo(1);
            assertThat(r.recordsMoved()).isEqualTo(4);
            assertEveryLiveBlockReadable(t);
            assertThat(t.usedBytes()).isEqualTo(10L * RECORD_BYTES);
            // The half-copied victim: 1 record removed, 1 moved out (both dead now), 2 still live there.
            assertThat(t.deadBytes()).isEqualTo(2L * RECORD_BYTES);

            CompactionResult rest = t.compact();
            assertThat(rest.segmentsCompacted()).isEqualTo(1);
            assertThat(rest.recordsMoved()).isEqualTo(2);
            assertEveryLiveBlockReadable(t);
            assertThat(t.deadBytes()).isZero();
            assertThat(t.usedBytes()).isEqualTo(10L * RECORD_BYTES);
        }
        try (SsdTier t = SsdTierTest.open(config())) {
            assertThat(t.blockCount()).isEqualTo(10); // the compacted copies are what a restart finds
            assertThat(t.openReport().duplicateRecords()).isZero();
        }
    }

    @Test
    void aBlockRemovedWhileCompactionCopiesIt_staysGoneAfterAKill9BeforeTheSwapIn() throws IOException {
        Path afterKill = copies;
        try (SsdTier t = twoVictims()) {
            AtomicInteger checks = new AtomicInteger();
            // The 1st check comes before block 1 (segment 1's first live record) is copied, the 2nd after: block 1's
            // copy is in the output, the index still names segment 1's record.
            t.compact(() -> {
                if (checks.incrementAndGet() == 2) {
                    assertThat(t.remove(key(1))).isTrue();
                    copyAsAKill9Leaves(afterKill);
                }
                return false;
            });
            assertThat(t.contains(key(1))).isFalse();
        }
        try (SsdTier t = SsdTierTest.open(config(afterKill))) {
            assertThat(t.contains(key(1))).as("block 1, removed before the kill").isFalse();
            assertThat(t.blockCount()).isEqualTo(9);
        }
        try (SsdTier t = SsdTierTest.open(config())) {
            assertThat(t.contains(key(1))).isFalse();
            assertThat(t.blockCount()).isEqualTo(9);
        }
    }

    /** The tier's files as they are now (a kill -9 leaves the page cache's bytes), the lock file left behind. */
    private void copyAsAKill9Leaves(Path to) {
        try (Stream<Path> s = Files.list(dir)) {
            for (Path p : s.toList()) {
                if (!p.getFileName().toString().equals(".lock")) {
                    Files.copy(p, to.resolve(p.getFileName()));
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Every file and directory in the tier's directory, by name. */
    private Set<String> files() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).collect(Collectors.toCollection(TreeSet::new));
        }
    }

    private static void assertReadable(SsdTier t, int... blocks) {
        for (int i : blocks) {
            assertThat(t.get(key(i))).as("block %d", i)
                    .hasValueSatisfying(b -> assertThat(b.sameContent(block(i))).isTrue());
        }
    }

    /**
     * Segment 1 keeps block 3 (its last record), segment 2 block 7. A bad block 3 used to fail the whole run, every
     * run: nothing retired, and each run left another copy of block 7 behind.
     */
    @ParameterizedTest(name = "block 3 {0}")
    @ValueSource(strings = {"cut short by a byte", "with a flipped byte"})
    void compaction_ofAVictimWithABadRecord_dropsThatBlock_retiresTheVictims_andLeavesNoFileBehind(String damage)
            throws IOException {
        try (SsdTier t = SsdTierTest.open(config())) {
            for (int i = 0; i < 12; i++) {
                t.put(block(i));
            }
            for (int i : new int[] {0, 1, 2, 4, 5, 6}) {
                t.remove(key(i));
            }
            Path seg1 = dir.resolve("seg-0000000000000001.kvseg");
            Path seg2 = dir.resolve("seg-0000000000000002.kvseg");
            long block3At = HEADER + 3L * RECORD_BYTES;
            if (damage.startsWith("cut")) {
                try (FileChannel ch = FileChannel.open(seg1, StandardOpenOption.WRITE)) {
                    ch.truncate(block3At + RECORD_BYTES - 1); // compaction's read of it ends early: an I/O error
                }
            } else {
                SsdCrashTest.flip(seg1, block3At + 300);
            }

            CompactionResult first = t.compact();
            Set<String> afterFirst = files();
            CompactionResult second = t.compact();

            assertThat(first.segmentsCompacted()).isEqualTo(2);
            assertThat(first.recordsMoved()).isEqualTo(1);
            assertThat(second.segmentsCompacted()).isZero();
            assertThat(files()).as("the second run leaves the files as the first did").isEqualTo(afterFirst);
            assertThat(seg1).doesNotExist();
            assertThat(seg2).doesNotExist();
            assertThat(t.contains(key(3))).isFalse();
            assertThat(t.stats().checksumFailures()).isEqualTo(1);
            assertReadable(t, 7, 8, 9, 10, 11);
        }
        try (SsdTier t = SsdTierTest.open(config())) {
            assertThat(t.blockCount()).isEqualTo(5);
            assertReadable(t, 7, 8, 9, 10, 11);
        }
    }

    /** A directory in the way of a segment's name: creating that segment fails (its rename cannot replace it). */
    private Path blockSegment(long id) throws IOException {
        Path blocker = Files.createDirectories(dir.resolve(String.format("seg-%016d.kvseg", id)));
        Files.write(blocker.resolve("in-the-way"), new byte[1]);
        return blocker;
    }

    private static void deleteBlocker(Path blocker) throws IOException {
        Files.delete(blocker.resolve("in-the-way"));
        Files.delete(blocker);
    }

    @Test
    void compaction_whoseOutputFails_keepsTheVictimsItFinished_andCutsItsUncommittedCopies() throws IOException {
        SsdConfig c = config().withCompactionLiveFraction(1.0);
        try (SsdTier t = SsdTierTest.open(c)) {
            for (int i = 0; i < 16; i++) {
                t.put(block(i)); // segments 1..3 sealed, 4 active
            }
            for (int i : new int[] {0, 1, 2, 3, 4, 8}) {
                t.remove(key(i)); // segment 1 wholly dead; segments 2 and 3 keep 3 records each
            }
            // Segment 5 takes 5, 6, 7 (segment 2 done) and 9; 10 needs segment 6, which cannot be created.
            Path blocker = blockSegment(6);

            assertThatThrownBy(t::compact).isInstanceOf(UncheckedIOException.class)
                    .hasMessageContaining("after retiring 2 segments");

            assertThat(SsdTierTest.segmentFiles(dir).stream().filter(Files::isRegularFile)
                    .map(p -> p.getFileName().toString())).containsExactly("seg-0000000000000003.kvseg",
                    "seg-0000000000000004.kvseg", "seg-0000000000000005.kvseg");
            assertThat(Files.size(dir.resolve("seg-0000000000000005.kvseg"))).as("block 9's copy cut off")
                    .isEqualTo(HEADER + 3L * RECORD_BYTES);
            assertThat(files()).noneMatch(n -> n.endsWith(".tmp"));
            assertThat(t.segmentCount()).isEqualTo(3);
            assertReadable(t, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15);

            deleteBlocker(blocker);
            assertThat(t.compact().segmentsCompacted()).isEqualTo(1);
            assertReadable(t, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15);
        }
        try (SsdTier t = SsdTierTest.open(c)) {
            assertThat(t.blockCount()).isEqualTo(10);
            assertThat(t.openReport().duplicateRecords()).isZero();
        }
    }

    @Test
    void compaction_whoseFirstOutputFails_deletesThatOutput_andUnlistsIt() throws IOException {
        SsdConfig eight = config().withSegmentBytes(HEADER + 8L * RECORD_BYTES).withCompactionLiveFraction(1.0);
        try (SsdTier t = SsdTierTest.open(eight)) {
            for (int i = 0; i < 17; i++) {
                t.put(block(i)); // segment 1: 0..7, segment 2: 8..15, segment 3: 16
            }
            t.remove(key(0));
        }
        // Reopened with outputs of 4 records: segment 1's 7 live records need two.
        SsdConfig four = eight.withSegmentBytes(HEADER + 4L * RECORD_BYTES);
        try (SsdTier t = SsdTierTest.open(four)) {
            Path blocker = blockSegment(5);
            long disk = t.diskBytes();

            assertThatThrownBy(t::compact).isInstanceOf(UncheckedIOException.class);

            assertThat(dir.resolve("seg-0000000000000004.kvseg")).as("the output with nothing committed")
                    .doesNotExist();
            assertThat(files()).noneMatch(n -> n.endsWith(".tmp"));
            assertThat(t.segmentCount()).isEqualTo(3);
            assertThat(t.diskBytes()).isEqualTo(disk);
            for (int i = 1; i < 17; i++) {
                assertReadable(t, i);
            }

            deleteBlocker(blocker);
            assertThat(t.compact().segmentsCompacted()).isEqualTo(1);
        }
        try (SsdTier t = SsdTierTest.open(four)) {
            assertThat(t.blockCount()).isEqualTo(16);
            assertThat(t.contains(key(0))).isFalse();
        }
    }
}
