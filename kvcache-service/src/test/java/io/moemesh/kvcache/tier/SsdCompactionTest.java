package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.RECORD_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.block;
import static io.moemesh.kvcache.tier.TestBlocks.key;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SsdCompactionTest {
    private static final int HEADER = 128;

    @TempDir
    Path dir;

    private SsdConfig config() {
        return SsdConfig.defaults(dir, 1 << 20).withSegmentBytes(HEADER + 4L * RECORD_BYTES)
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
            assertThat(r.bytesReclaimed()).isEqualTo(HEADER + 3L * RECORD_BYTES);
            assertThat(t.diskBytes()).isEqualTo(before - HEADER - 4L * RECORD_BYTES + HEADER + RECORD_BYTES);
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
            // Block 4's record in the uncompacted segment 2 comes back (removals are not logged; its bytes are
            // still the block's), the removed blocks of the deleted segment 1 do not.
            assertThat(t.blockCount()).isEqualTo(9);
            assertThat(t.contains(key(4))).isTrue();
            assertThat(t.contains(key(0))).isFalse();
            assertThat(t.openReport().duplicateRecords()).isZero();
        }
    }

    @Test
    void aCrashAfterTheCopyBeforeTheDelete_leavesDuplicates_thatReopenResolvesToTheSameBlocks() throws IOException {
        Path saved = Files.createDirectories(dir.resolveSibling(dir.getFileName() + "-saved"));
        try (SsdTier t = SsdTierTest.open(config())) {
            for (int i = 0; i < 8; i++) {
                t.put(block(i));
            }
            t.remove(key(0));
            t.remove(key(1));
            t.remove(key(2));
            Path first = SsdTierTest.segmentFiles(dir).getFirst();
            Files.copy(first, saved.resolve(first.getFileName()));
            t.compact();
        }
        // Put the compacted segment back, as if the process died between forcing the copy and deleting.
        try (var s = Files.list(saved)) {
            for (Path p : s.toList()) {
                Files.move(p, dir.resolve(p.getFileName()));
            }
        }
        try (SsdTier t = SsdTierTest.open(config())) {
            assertThat(t.openReport().duplicateRecords()).isEqualTo(1);
            assertThat(t.blockCount()).isEqualTo(5 + 3); // 3 removed blocks of the old copy come back: same bytes
            for (int i = 0; i < 8; i++) {
                int n = i;
                assertThat(t.get(key(i))).hasValueSatisfying(b -> assertThat(b.sameContent(block(n))).isTrue());
            }
            // The old copy of block 3 is dead space now; compaction clears it for good.
            t.remove(key(0));
            t.remove(key(1));
            t.remove(key(2));
            assertThat(t.compact().segmentsCompacted()).isGreaterThanOrEqualTo(1);
            assertThat(t.get(key(3))).isPresent();
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
}
