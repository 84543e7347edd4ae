package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.LAYOUT;
import static io.moemesh.kvcache.tier.TestBlocks.MODEL;
import static io.moemesh.kvcache.tier.TestBlocks.RECORD_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.block;
import static io.moemesh.kvcache.tier.TestBlocks.key;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.policy.LruPolicy;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class SsdTierTest {
    @TempDir
    Path dir;

    static SsdConfig config(Path dir) {
        return SsdConfig.defaults(dir, 1 << 20).withSegmentBytes(128 + 4L * RECORD_BYTES);
    }

    static SsdTier open(SsdConfig c) {
        return SsdTier.open(c, LAYOUT, MODEL, new LruPolicy());
    }

    static List<Path> segmentFiles(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.toString().endsWith(".kvseg")).sorted().toList();
        }
    }

    @ParameterizedTest
    @EnumSource(FsyncPolicy.class)
    void putThenGet_returnsTheSameBytes_underEveryFsyncPolicy(FsyncPolicy fsync) {
        try (SsdTier t = open(config(dir).withFsync(fsync))) {
            for (int i = 0; i < 10; i++) {
                assertThat(t.put(block(i))).isEqualTo(PutResult.STORED);
            }
            assertThat(t.put(block(3))).isEqualTo(PutResult.ALREADY_PRESENT);
            for (int i = 0; i < 10; i++) {
                int n = i;
                assertThat(t.get(key(i))).hasValueSatisfying(b -> assertThat(b.sameContent(block(n))).isTrue());
            }
            assertThat(t.get(key(99))).isEmpty();
            TierStats s = t.stats();
            assertThat(s.hits()).isEqualTo(10);
            assertThat(s.misses()).isEqualTo(1);
            assertThat(s.bytesWritten()).isEqualTo(10L * RECORD_BYTES);
            assertThat(s.usedBytes()).isEqualTo(10L * RECORD_BYTES);
        }
    }

    @Test
    void segments_rollOverAtTheConfiguredSize() throws IOException {
        try (SsdTier t = open(config(dir))) {
            for (int i = 0; i < 10; i++) {
                t.put(block(i));
            }
            assertThat(t.segmentCount()).isEqualTo(3);
        }
        List<Path> files = segmentFiles(dir);
        assertThat(files).hasSize(3);
        assertThat(Files.size(files.get(0))).isEqualTo(128 + 4L * RECORD_BYTES);
        assertThat(Files.size(files.get(2))).isEqualTo(128 + 2L * RECORD_BYTES);
    }

    @Test
    void reopen_rebuildsExactlyTheIndex_andAppendsToANewSegment() {
        try (SsdTier t = open(config(dir))) {
            for (int i = 0; i < 12; i++) {
                t.put(block(i));
            }
        }
        try (SsdTier t = open(config(dir))) {
            assertThat(t.openReport().blocks()).isEqualTo(12);
            assertThat(t.openReport().checksumFailures()).isZero();
            assertThat(t.blockCount()).isEqualTo(12);
            assertThat(t.usedBytes()).isEqualTo(12L * RECORD_BYTES);
            for (int i = 0; i < 12; i++) {
                int n = i;
                assertThat(t.get(key(i))).hasValueSatisfying(b -> assertThat(b.sameContent(block(n))).isTrue());
            }
            assertThat(t.contains(key(12))).isFalse();
            // New puts after a reopen go to a new segment, never into an old one.
            t.put(block(12));
            assertThat(t.segmentCount()).isEqualTo(4);
        }
        try (SsdTier t = open(config(dir))) {
            assertThat(t.blockCount()).isEqualTo(13);
        }
    }

    @Test
    void capacity_evictsLeastRecentlyUsed_andPinnedBlocksNever() {
        SsdConfig c = config(dir).withCapacityBytes(3L * RECORD_BYTES);
        try (SsdTier t = open(c)) {
            t.put(block(1));
            t.put(block(2));
            t.put(block(3));
            t.pin(key(1));
            t.put(block(4));
            assertThat(t.contains(key(1))).isTrue();
            assertThat(t.contains(key(2))).isFalse();
            assertThat(t.usedBytes()).isEqualTo(3L * RECORD_BYTES);
            assertThat(t.deadBytes()).isEqualTo(RECORD_BYTES);
            assertThat(t.stats().evictions()).isEqualTo(1);
            t.pin(key(3));
            t.pin(key(4));
            assertThat(t.put(block(5))).isEqualTo(PutResult.NO_SPACE);
            assertThat(t.contains(key(5))).isFalse();
        }
    }

    @Test
    void aSecondTierOnTheSameDirectory_isRefusedNamingIt_andItOpensAgainOnceTheFirstIsClosed() {
        try (SsdTier first = open(config(dir))) {
            first.put(block(1));

            assertThatThrownBy(() -> open(config(dir)).close())
                    .isInstanceOf(SsdDirectoryLockedException.class)
                    .hasMessageContaining("the SSD directory " + dir.toAbsolutePath() + " is in use by an SSD tier "
                            + "of this process that was not closed");
            // The refused open touched nothing: the first tier goes on.
            assertThat(first.put(block(2))).isEqualTo(PutResult.STORED);
            assertThat(first.get(key(1))).isPresent();
        }
        try (SsdTier again = open(config(dir))) {
            assertThat(again.blockCount()).isEqualTo(2);
        }
        assertThat(dir.resolve(".lock")).as("a closed tier leaves no lock file").doesNotExist();
        // An open that fails after taking the lock (here: the segments are another model's) releases it too.
        assertThatThrownBy(() -> SsdTier.open(config(dir), LAYOUT, TestBlocks.fingerprint(2), new LruPolicy()))
                .isInstanceOf(SegmentMismatchException.class);
        try (SsdTier again = open(config(dir))) {
            assertThat(again.get(key(1))).isPresent();
        }
    }

    @Test
    void open_refused_forASegmentOfAnotherModel() {
        try (SsdTier t = open(config(dir))) {
            t.put(block(1));
        }
        assertThatThrownBy(() -> SsdTier.open(config(dir), LAYOUT, TestBlocks.fingerprint(2), new LruPolicy()))
                .isInstanceOf(SegmentMismatchException.class)
                .hasMessageContaining("model fingerprint " + MODEL.hex())
                .hasMessageContaining("one directory per model");
    }

    @Test
    void open_refused_forASegmentOfAnotherLayout() {
        try (SsdTier t = open(config(dir))) {
            t.put(block(1));
        }
        KvLayout other = new KvLayout(2, 2, 4, 16);
        assertThatThrownBy(() -> SsdTier.open(config(dir), other, MODEL, new LruPolicy()))
                .isInstanceOf(SegmentMismatchException.class)
                .hasMessageContaining("segment of " + LAYOUT).hasMessageContaining("this store serves " + other);
    }

    @Test
    void put_refused_forABlockOfAnotherLayout_storeUnchanged() {
        try (SsdTier t = open(config(dir))) {
            KvBlock other = block(1, new KvLayout(1, 2, 4, 4));
            assertThatThrownBy(() -> t.put(other)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("but the SSD tier stores");
            assertThat(t.blockCount()).isZero();
            assertThat(t.diskBytes()).isZero();
        }
    }

    @Test
    void open_refused_whenTheCapacityCannotHoldOneRecord() {
        assertThatThrownBy(() -> open(config(dir).withCapacityBytes(RECORD_BYTES - 1)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("cannot hold one record");
    }

    @Test
    void config_refused_withTheFieldNamed() {
        assertThatThrownBy(() -> config(dir).withCompactionLiveFraction(1.5))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("compactionLiveFraction");
        assertThatThrownBy(() -> new SsdConfig(dir, 1, 1, FsyncPolicy.INTERVAL, Duration.ZERO, 1, 0.5,
                PayloadEncoding.FLOAT32)).hasMessageStartingWith("fsyncInterval");
        assertThatThrownBy(() -> config(dir).withSegmentBytes(0)).hasMessageStartingWith("segmentBytes");
    }

    @Test
    void int8_isOffByDefault_andWhenOnStoresWithinHalfAStepPerRow_andSurvivesReopen() {
        assertThat(config(dir).encoding()).isEqualTo(PayloadEncoding.FLOAT32);
        SsdConfig c = config(dir).withEncoding(PayloadEncoding.INT8);
        int rowFloats = LAYOUT.headDim();
        try (SsdTier t = open(c)) {
            t.put(block(1));
            assertThat(t.recordBytes()).isEqualTo(44 + LAYOUT.rowsPerBlock() * (4 + rowFloats));
        }
        try (SsdTier t = open(c.withEncoding(PayloadEncoding.FLOAT32))) {
            // A segment of the other encoding stays readable after the setting changes.
            float[] want = block(1).toFloats();
            float[] got = t.get(key(1)).orElseThrow().toFloats();
            for (int r = 0; r < LAYOUT.rowsPerBlock(); r++) {
                float max = 0;
                for (int d = 0; d < rowFloats; d++) {
                    max = Math.max(max, Math.abs(want[r * rowFloats + d]));
                }
                for (int d = 0; d < rowFloats; d++) {
                    assertThat(got[r * rowFloats + d]).isCloseTo(want[r * rowFloats + d], within(max / 254 + 1e-6f));
                }
            }
            t.put(block(2));
            assertThat(t.get(key(2)).orElseThrow().sameContent(block(2))).isTrue();
        }
    }

    @Test
    void int8_refusesNonFiniteValues_storeUnchanged() {
        float[] f = TestBlocks.floats(1, LAYOUT);
        f[5] = Float.NaN;
        try (SsdTier t = open(config(dir).withEncoding(PayloadEncoding.INT8))) {
            assertThatThrownBy(() -> t.put(KvBlock.of(key(1), LAYOUT, f)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("cannot be stored as int8");
            assertThat(t.blockCount()).isZero();
        }
    }

    @Test
    void remove_freesTheBytes_andTheSpaceIsDeadUntilCompaction() {
        try (SsdTier t = open(config(dir))) {
            t.put(block(1));
            t.put(block(2));
            assertThat(t.remove(key(1))).isTrue();
            assertThat(t.remove(key(1))).isFalse();
            assertThat(t.get(key(1))).isEmpty();
            assertThat(t.usedBytes()).isEqualTo(RECORD_BYTES);
            assertThat(t.deadBytes()).isEqualTo(RECORD_BYTES);
        }
    }

    @Test
    void closedTier_refusesCalls() {
        SsdTier t = open(config(dir));
        t.close();
        assertThatThrownBy(() -> t.put(block(1))).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("closed");
    }

    /**
     * Runs {@code call} on a thread whose interrupt flag is set: its first {@code FileChannel} I/O closes the channel
     * (InterruptibleChannel), deterministically. @return what it returned, or what it threw
     */
    private static Object onAnInterruptedThread(java.util.concurrent.Callable<?> call) throws InterruptedException {
        Object[] out = new Object[1];
        Thread t = new Thread(() -> {
            Thread.currentThread().interrupt();
            try {
                out[0] = call.call();
            } catch (Exception e) {
                out[0] = e;
            }
        });
        t.start();
        t.join();
        return out[0];
    }

    @Test
    void get_byAnInterruptedThread_missesForItself_andTheBlockStaysReadableForOthers() throws Exception {
        try (SsdTier t = open(config(dir))) {
            t.put(block(1));
            t.put(block(2));
            assertThat(onAnInterruptedThread(() -> t.get(key(1)))).isEqualTo(java.util.Optional.empty());
            // Its read closed the segment's channel; the segment reopens it instead of missing until a restart.
            assertThat(t.get(key(1))).hasValueSatisfying(b -> assertThat(b.sameContent(block(1))).isTrue());
            assertThat(t.get(key(2))).hasValueSatisfying(b -> assertThat(b.sameContent(block(2))).isTrue());
        }
    }

    @Test
    void put_byAnInterruptedThread_fails_neverStoresHalfARecord_andOthersGoOnAppending() throws Exception {
        try (SsdTier t = open(config(dir))) {
            t.put(block(1));
            assertThat(onAnInterruptedThread(() -> t.put(block(2)))).isInstanceOf(java.io.UncheckedIOException.class);
            assertThat(t.get(key(2))).isEmpty();
            assertThat(t.put(block(3))).isEqualTo(PutResult.STORED);
            assertThat(t.get(key(1))).hasValueSatisfying(b -> assertThat(b.sameContent(block(1))).isTrue());
            assertThat(t.get(key(3))).hasValueSatisfying(b -> assertThat(b.sameContent(block(3))).isTrue());
        }
        try (SsdTier t = open(config(dir))) {
            assertThat(t.get(key(1))).isPresent();
            assertThat(t.get(key(2))).isEmpty();
            assertThat(t.get(key(3))).hasValueSatisfying(b -> assertThat(b.sameContent(block(3))).isTrue());
            assertThat(t.stats().usedBytes()).isEqualTo(2L * RECORD_BYTES);
        }
    }

    @Test
    void put_whoseNewSegmentCannotBeCreated_fails_leavingNoFileBehind_andTheNextPutGoesOn() throws IOException {
        try (SsdTier t = open(config(dir))) {
            // A directory in the way of segment 1's name: its rename fails after the *.tmp was written.
            Path blocker = Files.createDirectories(dir.resolve("seg-0000000000000001.kvseg"));
            Files.write(blocker.resolve("in-the-way"), new byte[1]);
            for (int id = 1; id <= 3; id++) {
                assertThatThrownBy(() -> t.put(block(1))).isInstanceOf(java.io.UncheckedIOException.class);
                // Each failed put used its id up: in the way of the next one's.
                blocker = Files.move(blocker, dir.resolve(String.format("seg-%016d.kvseg", id + 1)));
            }
            try (Stream<Path> s = Files.list(dir)) {
                assertThat(s.filter(p -> !p.equals(dir.resolve(".lock")))).as("only the blocker").hasSize(1);
            }
            Files.delete(blocker.resolve("in-the-way"));
            Files.delete(blocker);
            assertThat(t.put(block(1))).isEqualTo(PutResult.STORED);
            assertThat(t.get(key(1))).isPresent();
        }
    }

    @Test
    void put_whoseNewSegmentCannotBeCreated_evictsNothing() throws IOException {
        // Room for 2 records, and segment 1 is full after 2: put(3) needs a room and a new segment.
        SsdConfig c = SsdConfig.defaults(dir, 2L * RECORD_BYTES).withSegmentBytes(128 + 2L * RECORD_BYTES);
        try (SsdTier t = open(c)) {
            t.put(block(1));
            t.put(block(2));
            Path blocker = Files.createDirectories(dir.resolve("seg-0000000000000002.kvseg"));
            Files.write(blocker.resolve("in-the-way"), new byte[1]);

            assertThatThrownBy(() -> t.put(block(3))).isInstanceOf(java.io.UncheckedIOException.class);

            assertThat(t.contains(key(1))).isTrue();
            assertThat(t.contains(key(2))).isTrue();
            assertThat(t.contains(key(3))).isFalse();
            assertThat(t.blockCount()).isEqualTo(2);
            assertThat(t.stats().evictions()).isZero();
            Files.delete(blocker.resolve("in-the-way"));
            Files.delete(blocker);
        }
        try (SsdTier t = open(c)) {
            assertThat(t.openReport().tombstonedRecords()).as("no eviction was logged either").isZero();
            assertThat(t.blockCount()).isEqualTo(2);
        }
    }

    @ParameterizedTest
    @EnumSource(value = FsyncPolicy.class, names = {"ALWAYS", "INTERVAL"})
    void put_whoseForceFails_leavesNoRecordThatARestartServes_andEvictsNothing(FsyncPolicy fsync) {
        // INTERVAL with a 1-byte threshold forces on every put, as ALWAYS does.
        SsdConfig c = new SsdConfig(dir, 2L * RECORD_BYTES, 1 << 20, fsync, Duration.ofHours(1), 1, 0.5,
                PayloadEncoding.FLOAT32);
        java.util.concurrent.atomic.AtomicBoolean failing = new java.util.concurrent.atomic.AtomicBoolean();
        FsyncSchedule.SegmentForce disk = s -> {
            if (failing.get()) {
                throw new IOException("injected: fsync reported an I/O error");
            }
            s.force();
        };
        try (SsdTier t = SsdTier.open(c, LAYOUT, MODEL, new LruPolicy(), System::nanoTime, disk)) {
            t.put(block(1));
            t.put(block(2));
            failing.set(true);

            assertThatThrownBy(() -> t.put(block(3))).isInstanceOf(java.io.UncheckedIOException.class);

            failing.set(false);
            assertThat(t.contains(key(3))).isFalse();
            assertThat(t.blockCount()).isEqualTo(2);
            assertThat(t.stats().evictions()).isZero();
            assertThat(t.unsyncedBytes()).as("the record taken back is not counted").isZero();
        }
        try (SsdTier t = open(c)) {
            assertThat(t.contains(key(3))).as("the block whose put failed").isFalse();
            assertThat(t.contains(key(1))).isTrue();
            assertThat(t.contains(key(2))).isTrue();
        }
    }

    @Test
    void segmentsAndTombstones_areOwnerOnly_andTheDirectoriesTheTierCreates_0700() throws IOException {
        org.junit.jupiter.api.Assumptions.assumeTrue(
                dir.getFileSystem().supportedFileAttributeViews().contains("posix"), "POSIX permissions");
        Path parent = dir.resolve("ssd");
        Path store = parent.resolve("model-b16");
        SsdConfig c = config(store);
        SsdTier ssd = open(c);
        try (TieredKvStore s = new TieredKvStore(LAYOUT, 2L * TestBlocks.BLOCK_BYTES, new LruPolicy(), ssd,
                io.moemesh.kvcache.policy.AdmissionPolicy.ADMIT_ALL, System::nanoTime)) {
            for (int i = 0; i < 12; i++) {
                s.put(block(i)); // DRAM holds 2: the others are demoted to SSD
            }
            for (int i : new int[] {0, 1, 2, 4}) {
                s.remove(key(i)); // tombstones: segment 1 below half live, segment 2 not
            }
            s.demoteAll();
            assertThat(Files.getPosixFilePermissions(store.resolve(".lock")))
                    .isEqualTo(PosixFilePermissions.fromString("rw-------"));
            assertThat(ssd.compact().segmentsCompacted()).as("an output segment").isPositive();
        }
        assertThat(Files.getPosixFilePermissions(parent)).isEqualTo(PosixFilePermissions.fromString("rwx------"));
        assertThat(Files.getPosixFilePermissions(store)).isEqualTo(PosixFilePermissions.fromString("rwx------"));
        List<Path> files;
        try (Stream<Path> s = Files.list(store)) {
            files = s.toList();
        }
        assertThat(files).extracting(p -> p.getFileName().toString())
                .anyMatch(n -> n.endsWith(".kvseg")).anyMatch(n -> n.endsWith(".kvdead"));
        for (Path f : files) {
            assertThat(Files.getPosixFilePermissions(f)).as("%s", f.getFileName())
                    .isEqualTo(PosixFilePermissions.fromString("rw-------"));
        }
    }
}
