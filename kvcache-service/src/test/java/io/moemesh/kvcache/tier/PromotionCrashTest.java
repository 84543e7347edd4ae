package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.BLOCK_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.LAYOUT;
import static io.moemesh.kvcache.tier.TestBlocks.RECORD_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.block;
import static io.moemesh.kvcache.tier.TestBlocks.key;
import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A block promoted from SSD to DRAM keeps its SSD record untombstoned while it is only in DRAM, so a kill -9 (the
 * files as the page cache holds them, the process gone: a copy of the directory without its {@code .lock}) does not
 * lose it; the record is tombstoned once the block leaves the store, or after a demotion writes it anew.
 */
class PromotionCrashTest {
    @TempDir
    Path dir;
    @TempDir
    Path afterKill;

    /** DRAM of 2 blocks (LRU) over an SSD tier of {@code ssdBlocks} records. */
    private TieredKvStore store(int ssdBlocks) {
        SsdTier ssd = SsdTierTest.open(SsdConfig.defaults(dir, (long) ssdBlocks * RECORD_BYTES));
        return new TieredKvStore(LAYOUT, 2L * BLOCK_BYTES, new LruPolicy(), ssd, AdmissionPolicy.ADMIT_ALL,
                System::nanoTime);
    }

    /** Block 1 demoted to SSD, then read back: promoted into DRAM's free room. DRAM: 2, 1; SSD: empty. */
    private static void promoteBlock1(TieredKvStore s) {
        s.put(block(1));
        s.put(block(2));
        s.put(block(3)); // demotes 1
        s.remove(key(3));
        assertThat(s.lower().contains(key(1))).isTrue();
        assertThat(s.get(key(1)).orElseThrow().tier()).isEqualTo(TierKind.SSD);
        assertThat(s.dram().contains(key(1))).isTrue();
        assertThat(s.lower().contains(key(1))).as("exclusive tiers").isFalse();
        assertThat(s.lower().usedBytes()).as("nor does it count in SSD's capacity").isZero();
        assertThat(keptRecords(s)).isEqualTo(1);
    }

    /** Records the SSD tier keeps for blocks promoted from it: one per such block in DRAM, none once it is gone. */
    private static int keptRecords(TieredKvStore s) {
        return ((SsdTier) s.lower()).index().promotedCount();
    }

    /** What a restart after a kill -9 of the process now finds: the files as they are, the lock file left behind. */
    private SsdTier openAfterKill9() throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            for (Path p : files.toList()) {
                if (!p.getFileName().toString().equals(".lock")) {
                    Files.copy(p, afterKill.resolve(p.getFileName()));
                }
            }
        }
        return SsdTierTest.open(SsdConfig.defaults(afterKill, 1 << 20));
    }

    @Test
    void aPromotedBlock_survivesAKill9_fromItsSsdRecord() throws IOException {
        try (TieredKvStore s = store(10)) {
            promoteBlock1(s);
            try (SsdTier restarted = openAfterKill9()) {
                assertThat(restarted.get(key(1))).as("block 1 after the kill -9")
                        .hasValueSatisfying(b -> assertThat(b.sameContent(block(1))).isTrue());
            }
        }
    }

    @Test
    void aPromotedBlock_droppedFromDramWithoutADemotion_staysGoneAfterAKill9() throws IOException {
        try (TieredKvStore s = store(1)) {
            promoteBlock1(s); // DRAM: 2, 1
            s.put(block(4)); // demotes 2, the SSD tier's one record
            s.pin(key(2)); // ... pinned there: the SSD tier takes no other block
            s.pin(key(4));
            s.put(block(5)); // evicts 1, the only unpinned DRAM block: NO_SPACE below, so it leaves the store
            assertThat(s.stats().demotionDrops()).isEqualTo(1);
            assertThat(s.contains(key(1))).isFalse();
            assertThat(keptRecords(s)).isZero();
            try (SsdTier restarted = openAfterKill9()) {
                assertThat(restarted.contains(key(1))).isFalse();
                assertThat(restarted.contains(key(2))).isTrue();
            }
        }
    }

    @Test
    void aPromotedBlock_removed_staysGoneAfterAKill9() throws IOException {
        try (TieredKvStore s = store(10)) {
            promoteBlock1(s);
            assertThat(s.remove(key(1))).isTrue();
            assertThat(keptRecords(s)).isZero();
            try (SsdTier restarted = openAfterKill9()) {
                assertThat(restarted.contains(key(1))).isFalse();
            }
        }
    }

    @Test
    void aPromotedBlock_demotedAgain_thenEvictedFromSsd_doesNotComeBackFromItsOlderRecord() throws IOException {
        try (TieredKvStore s = store(2)) {
            promoteBlock1(s); // DRAM: 2, 1
            s.get(key(2));
            s.put(block(4)); // demotes 1 again: a new record, the older one tombstoned
            assertThat(s.lower().contains(key(1))).isTrue();
            assertThat(keptRecords(s)).isZero();
            s.put(block(5)); // demotes 2
            s.get(key(4));
            s.put(block(6)); // demotes 5: the SSD tier evicts its oldest, 1's new record
            assertThat(s.contains(key(1))).isFalse();
            try (SsdTier restarted = openAfterKill9()) {
                assertThat(restarted.contains(key(1))).as("neither record of block 1 comes back").isFalse();
                assertThat(restarted.openReport().duplicateRecords()).isZero();
            }
        }
    }

    @Test
    void aPromotedBlocksRecord_isNotCopiedByCompaction_soItsRetiredSegmentTakesIt() throws IOException {
        SsdConfig c = SsdConfig.defaults(dir, 1 << 20).withSegmentBytes(128 + 4L * RECORD_BYTES)
                .withCompactionLiveFraction(1.0);
        SsdTier ssd = SsdTierTest.open(c);
        try (TieredKvStore s = new TieredKvStore(LAYOUT, 2L * BLOCK_BYTES, new LruPolicy(), ssd,
                AdmissionPolicy.ADMIT_ALL, System::nanoTime)) {
            for (int i = 10; i < 15; i++) {
                ssd.put(block(i)); // segment 1: 10..13 (sealed), segment 2: 14
            }
            assertThat(s.get(key(11)).orElseThrow().tier()).isEqualTo(TierKind.SSD);
            assertThat(ssd.compact().recordsMoved()).as("10, 12 and 13, not the promoted 11").isEqualTo(3);
            assertThat(s.contains(key(11))).isTrue();
            assertThat(ssd.index().promotedCount()).as("its segment retired: nothing left to let go of").isZero();
            try (SsdTier restarted = openAfterKill9()) {
                assertThat(restarted.contains(key(11))).isFalse();
                assertThat(restarted.blockCount()).isEqualTo(4);
            }
        }
    }
}
