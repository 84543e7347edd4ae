package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.BLOCK_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.LAYOUT;
import static io.moemesh.kvcache.tier.TestBlocks.RECORD_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.block;
import static io.moemesh.kvcache.tier.TestBlocks.key;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.policy.AccessHint;
import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TieredKvStoreTest {
    @TempDir
    Path dir;

    private TieredKvStore store(int dramBlocks, int ssdBlocks, AdmissionPolicy admission) {
        SsdTier ssd = SsdTierTest.open(SsdConfig.defaults(dir, (long) ssdBlocks * RECORD_BYTES));
        return new TieredKvStore(LAYOUT, (long) dramBlocks * BLOCK_BYTES, new LruPolicy(), ssd, admission,
                System::nanoTime);
    }

    private TieredKvStore store(int dramBlocks, int ssdBlocks) {
        return store(dramBlocks, ssdBlocks, AdmissionPolicy.ADMIT_ALL);
    }

    @Test
    void put_goesToDram_andDramPressureDemotesTheColdestToSsd() {
        try (TieredKvStore s = store(2, 10)) {
            assertThat(s.put(block(1))).isEqualTo(new StoreResult(PutResult.STORED, Optional.of(TierKind.DRAM)));
            s.put(block(2));
            s.put(block(3));
            assertThat(s.dram().contains(key(1))).isFalse();
            assertThat(s.lower().contains(key(1))).isTrue();
            assertThat(s.stats().demotions()).isEqualTo(1);
            assertThat(s.put(block(1))).isEqualTo(new StoreResult(PutResult.ALREADY_PRESENT,
                    Optional.of(TierKind.SSD)));
        }
    }

    @Test
    void demoteAll_movesEveryDramBlockDown_withItsPin_soTheLowerTierAloneHoldsThem() {
        try (TieredKvStore s = store(3, 10)) {
            s.put(block(1));
            s.put(block(2));
            s.pin(key(2));
            assertThat(s.demoteAll()).isEqualTo(2);
            assertThat(s.dram().blockCount()).isZero();
            assertThat(s.lower().contains(key(1))).isTrue();
            assertThat(s.lower().isPinned(key(2))).isTrue();
            assertThat(s.get(key(1)).orElseThrow().block().sameContent(block(1))).isTrue();
        }
    }

    @Test
    void restore_ofAPrefixLargerThanDram_promotesNothingOnceDramIsFull_andWritesNothing() {
        try (TieredKvStore s = store(2, 20)) {
            for (int i = 1; i <= 10; i++) {
                s.put(block(i));
            }
            s.put(block(11)); // DRAM: 10, 11; SSD: 1..9
            long demotions = s.stats().demotions();
            long written = s.lower().stats().bytesWritten();
            for (int i = 1; i <= 9; i++) {
                int b = i;
                assertThat(s.restore(key(i), AccessHint.NONE)).hasValueSatisfying(sb -> {
                    assertThat(sb.tier()).isEqualTo(TierKind.SSD);
                    assertThat(sb.block().sameContent(block(b))).isTrue();
                });
            }
            assertThat(s.stats().demotions()).isEqualTo(demotions);
            assertThat(s.stats().promotions()).isZero();
            assertThat(s.lower().stats().bytesWritten()).isEqualTo(written);
            assertThat(s.restoredWithoutPromotion()).isEqualTo(9);
            // Bookkeeping: each block still in exactly one tier, DRAM's residents the ones it had, hits counted below.
            assertThat(s.dram().contains(key(10))).isTrue();
            assertThat(s.dram().contains(key(11))).isTrue();
            for (int i = 1; i <= 9; i++) {
                assertThat(s.lower().contains(key(i))).isTrue();
                assertThat(s.dram().contains(key(i))).isFalse();
            }
            assertThat(s.lower().stats().hits()).isEqualTo(9);
            assertThat(s.lookup(java.util.stream.IntStream.rangeClosed(1, 11).mapToObj(TestBlocks::key).toList())
                    .presentBlocks()).isEqualTo(11);
        }
    }

    @Test
    void restore_promotesIntoFreeDramOnly_withoutEvicting() {
        try (TieredKvStore s = store(3, 20)) {
            for (int i = 1; i <= 5; i++) {
                s.put(block(i)); // DRAM: 3, 4, 5; SSD: 1, 2
            }
            s.remove(key(5)); // one block of free room
            long demotions = s.stats().demotions();
            assertThat(s.restore(key(1), AccessHint.NONE).orElseThrow().tier()).isEqualTo(TierKind.SSD);
            assertThat(s.dram().contains(key(1))).isTrue();
            assertThat(s.lower().contains(key(1))).isFalse();
            assertThat(s.restore(key(2), AccessHint.NONE).orElseThrow().tier()).isEqualTo(TierKind.SSD);
            assertThat(s.dram().contains(key(2))).isFalse();
            assertThat(s.lower().contains(key(2))).isTrue();
            assertThat(s.stats().promotions()).isEqualTo(1);
            assertThat(s.stats().demotions()).isEqualTo(demotions);
            assertThat(s.dram().contains(key(3))).isTrue();
            assertThat(s.dram().contains(key(4))).isTrue();
            assertThat(s.restore(key(1), AccessHint.NONE).orElseThrow().tier()).isEqualTo(TierKind.DRAM);
        }
    }

    @Test
    void restore_ofAPinnedSsdBlock_carriesThePinWhenPromoted() {
        try (TieredKvStore s = store(2, 20)) {
            s.put(block(1));
            s.put(block(2));
            s.put(block(3)); // 1 demoted
            s.pin(key(1));
            s.remove(key(3));
            s.restore(key(1), AccessHint.NONE);
            assertThat(s.dram().isPinned(key(1))).isTrue();
            assertThat(s.isPinned(key(1))).isTrue();
        }
    }

    @Test
    void restore_ofAnUnstoredKey_isEmpty() {
        try (TieredKvStore s = store(2, 20)) {
            assertThat(s.restore(key(7), AccessHint.NONE)).isEmpty();
        }
    }

    @Test
    void anSsdHit_isPromoted_andTheTiersStayExclusive() {
        try (TieredKvStore s = store(2, 10)) {
            s.put(block(1));
            s.put(block(2));
            s.put(block(3));
            assertThat(s.get(key(1))).hasValueSatisfying(sb -> {
                assertThat(sb.tier()).isEqualTo(TierKind.SSD);
                assertThat(sb.block().sameContent(block(1))).isTrue();
            });
            assertThat(s.dram().contains(key(1))).isTrue();
            assertThat(s.lower().contains(key(1))).isFalse();
            assertThat(s.lower().contains(key(2))).isTrue(); // made room for the promotion
            assertThat(s.get(key(1)).orElseThrow().tier()).isEqualTo(TierKind.DRAM);
            StoreStats st = s.stats();
            assertThat(st.promotions()).isEqualTo(1);
            assertThat(st.usedBytes()).isEqualTo(2L * BLOCK_BYTES + RECORD_BYTES);
        }
    }

    @Test
    void lookup_returnsTheLongestLeadingRun_withTheTierOfEach() {
        try (TieredKvStore s = store(2, 10)) {
            for (int i = 0; i < 4; i++) {
                s.put(block(i), AccessHint.atChainPosition(i));
            }
            s.put(block(5));
            LookupResult r = s.lookup(List.of(key(0), key(1), key(2), key(3), key(4), key(5)));
            assertThat(r.presentBlocks()).isEqualTo(4);
            assertThat(r.tiers()).containsExactly(TierKind.SSD, TierKind.SSD, TierKind.SSD, TierKind.DRAM);
            assertThat(s.lookup(List.of(key(9), key(0))).presentBlocks()).isZero();
        }
    }

    @Test
    void pins_spanTiers_nest_andPromotionCarriesThePin() {
        try (TieredKvStore s = store(1, 2)) {
            s.put(block(1));
            s.put(block(2)); // 1 demoted
            assertThat(s.pin(key(1))).isTrue();
            assertThat(s.pin(key(1))).isTrue();
            assertThat(s.lower().isPinned(key(1))).isTrue();
            s.put(block(3)); // 2 demoted; SSD now full: 1 (pinned) and 2
            s.put(block(4)); // 3 demoted: SSD evicts 2, never the pinned 1
            assertThat(s.contains(key(1))).isTrue();
            assertThat(s.contains(key(2))).isFalse();
            s.get(key(1)); // promoted, pin and all
            assertThat(s.dram().isPinned(key(1))).isTrue();
            s.put(block(5)); // DRAM holds only the pinned 1: the put goes straight to SSD
            assertThat(s.dram().contains(key(1))).isTrue();
            assertThat(s.unpin(key(1))).isTrue();
            assertThat(s.isPinned(key(1))).isTrue();
            assertThat(s.unpin(key(1))).isTrue();
            assertThat(s.isPinned(key(1))).isFalse();
            assertThat(s.unpin(key(1))).isFalse();
            assertThat(s.pin(key(42))).isFalse();
        }
    }

    /** Spoils block 1's SSD record (a payload byte), pinned twice there: the next read of it fails its CRC32C. */
    private static void pinTwiceAndSpoilOnSsd(TieredKvStore s) throws IOException {
        s.put(block(1));
        s.put(block(2)); // 1 demoted
        assertThat(s.pin(key(1))).isTrue();
        assertThat(s.pin(key(1))).isTrue();
        RecordExtent e = s.lower().locate(key(1), AccessHint.NONE, Long.MAX_VALUE).orElseThrow();
        SsdCrashTest.flip(e.path(), e.offset() + 44 + 100);
    }

    @Test
    void aPinnedBlockDroppedForABadChecksum_takesItsPinsWithIt_soUnpinAnswersFalse() throws IOException {
        try (TieredKvStore s = store(1, 4)) {
            pinTwiceAndSpoilOnSsd(s);
            assertThat(s.get(key(1))).isEmpty(); // the SSD tier drops the record
            assertThat(s.contains(key(1))).isFalse();
            assertThat(s.isPinned(key(1))).isFalse();
            assertThat(s.unpin(key(1))).isFalse();
        }
    }

    @Test
    void aLowerTierReadThatFailsWithoutDroppingTheBlock_keepsItsPins_soUnpinReleasesTheTiersPin() throws IOException {
        try (TieredKvStore s = store(1, 4)) {
            s.put(block(1));
            s.put(block(2)); // 1 demoted
            assertThat(s.pin(key(1))).isTrue();
            // Cut the segment file inside block 1's record: its read fails with an I/O error (a short read), not a
            // checksum mismatch, so the SSD tier keeps the block indexed and pinned.
            RecordExtent e = s.lower().locate(key(1), AccessHint.NONE, Long.MAX_VALUE).orElseThrow();
            try (FileChannel ch = FileChannel.open(e.path(), StandardOpenOption.WRITE)) {
                ch.truncate(e.offset() + 10);
            }

            assertThat(s.get(key(1))).isEmpty();

            assertThat(s.lower().contains(key(1))).isTrue();
            assertThat(s.isPinned(key(1))).isTrue();
            assertThat(s.unpin(key(1))).isTrue();
            assertThat(s.lower().isPinned(key(1))).as("the SSD tier's pin, released").isFalse();
        }
    }

    @Test
    void aRePut_ofAPinnedBlockItsTierDroppedForABadChecksum_isAFreshUnpinnedBlock() throws IOException {
        try (TieredKvStore s = store(1, 4)) {
            pinTwiceAndSpoilOnSsd(s);
            assertThat(s.lower().get(key(1))).isEmpty(); // dropped below the store: it is not told
            assertThat(s.put(block(1)).result()).isEqualTo(PutResult.STORED);
            assertThat(s.dram().isPinned(key(1))).isFalse();
            assertThat(s.isPinned(key(1))).isFalse();
            assertThat(s.unpin(key(1))).isFalse();
            assertThat(s.pin(key(1))).isTrue(); // pins count afresh
            assertThat(s.unpin(key(1))).isTrue();
            assertThat(s.unpin(key(1))).isFalse();
        }
    }

    /**
     * A caller that holds a chain's head locates only the rest: each located block's use is recorded at its chain
     * position in the sequence (the eviction order takes a chain's tail first), not its index in the request.
     */
    @Test
    void locate_recordsEachBlocksUseAtItsChainPosition_countedFromFirstBlock() {
        List<Integer> positions = new ArrayList<>();
        KvTier recording = new ForwardingKvTier(SsdTierTest.open(SsdConfig.defaults(dir, 10L * RECORD_BYTES))) {
            @Override
            public Optional<RecordExtent> locate(BlockKey key, AccessHint hint, long leaseUntilNanos) {
                positions.add(hint.chainPosition());
                return super.locate(key, hint, leaseUntilNanos);
            }
        };
        try (TieredKvStore s = new TieredKvStore(LAYOUT, BLOCK_BYTES, new LruPolicy(), recording,
                AdmissionPolicy.ADMIT_ALL, System::nanoTime)) {
            s.put(block(1));
            s.put(block(2));
            s.put(block(3)); // 1 and 2 demoted to the SSD tier
            assertThat(s.locate(List.of(key(1), key(2)), 5, Long.MAX_VALUE)).extracting(TieredKvStore.Located::tier)
                    .containsExactly(TierKind.SSD, TierKind.SSD);
            assertThat(positions).containsExactly(5, 6);
        }
    }

    @Test
    void theAdmissionPolicy_mayDeclineABlock_andNothingIsStored() {
        try (TieredKvStore s = store(2, 2, (k, hint) -> hint.chainPosition() < 2)) {
            assertThat(s.put(block(1), AccessHint.atChainPosition(5)).result()).isEqualTo(PutResult.DECLINED);
            assertThat(s.contains(key(1))).isFalse();
            assertThat(s.put(block(1), AccessHint.atChainPosition(0)).result()).isEqualTo(PutResult.STORED);
            assertThat(s.stats().declined()).isEqualTo(1);
        }
    }

    @Test
    void aFullyPinnedStore_refusesWithNoSpace() {
        try (TieredKvStore s = store(1, 1)) {
            s.put(block(1));
            s.pin(key(1));
            s.put(block(2));
            s.pin(key(2));
            assertThat(s.put(block(3))).isEqualTo(new StoreResult(PutResult.NO_SPACE, Optional.empty()));
            assertThat(s.contains(key(3))).isFalse();
        }
    }

    @Test
    void remove_dropsFromEitherTier_withItsPins() {
        try (TieredKvStore s = store(1, 4)) {
            s.put(block(1));
            s.put(block(2));
            s.pin(key(1));
            assertThat(s.remove(key(1))).isTrue();
            assertThat(s.remove(key(2))).isTrue();
            assertThat(s.remove(key(2))).isFalse();
            assertThat(s.isPinned(key(1))).isFalse();
            assertThat(s.stats().usedBytes()).isZero();
        }
    }

    @Test
    void put_refused_forABlockOfAnotherLayout() {
        try (TieredKvStore s = store(2, 2)) {
            assertThatThrownBy(() -> s.put(block(1, new KvLayout(2, 2, 4, 16))))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("but the store stores");
        }
    }

    @Test
    void concurrentPutsAndGets_ofEqualAndDifferentKeys_neverSeeAPartialOrWrongBlock() throws Exception {
        try (TieredKvStore s = store(8, 64)) {
            int threads = 4;
            CyclicBarrier start = new CyclicBarrier(threads);
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                List<Future<?>> fs = new ArrayList<>();
                for (int th = 0; th < threads; th++) {
                    int seed = th;
                    fs.add(pool.submit(() -> {
                        start.await();
                        for (int i = 0; i < 400; i++) {
                            int n = (i * 7 + seed * 13) % 48; // overlapping keys across threads
                            s.put(block(n));
                            BlockKey k = key((i * 5 + seed) % 48);
                            int want = (i * 5 + seed) % 48;
                            s.get(k).ifPresent(sb -> assertThat(sb.block().sameContent(block(want))).isTrue());
                        }
                        return null;
                    }));
                }
                for (Future<?> f : fs) {
                    f.get();
                }
            } finally {
                pool.shutdownNow();
            }
            for (int n = 0; n < 48; n++) {
                int want = n;
                assertThat(s.get(key(n))).as("block %d", n)
                        .hasValueSatisfying(sb -> assertThat(sb.block().sameContent(block(want))).isTrue());
                assertThat(s.dram().contains(key(n)) && s.lower().contains(key(n))).isFalse();
            }
            assertThat(s.dram().usedBytes()).isEqualTo(s.dram().blockCount() * BLOCK_BYTES);
            assertThat(s.lower().usedBytes()).isEqualTo(s.lower().blockCount() * RECORD_BYTES);
            assertThat(s.dram().blockCount() + s.lower().blockCount()).isEqualTo(48);
        }
    }

    @Test
    void put_ofANonFiniteBlock_overAnInt8SsdTier_isRefusedUpFront_notAcknowledgedInDramAndDroppedAtDemotion() {
        SsdTier ssd = SsdTierTest.open(SsdConfig.defaults(dir, 10L * RECORD_BYTES).withEncoding(PayloadEncoding.INT8));
        try (TieredKvStore s = new TieredKvStore(LAYOUT, 2L * BLOCK_BYTES, new LruPolicy(), ssd,
                AdmissionPolicy.ADMIT_ALL, System::nanoTime)) {
            float[] f = TestBlocks.floats(7, LAYOUT);
            f[5] = Float.NaN;
            KvBlock nan = KvBlock.of(key(7), LAYOUT, f);

            assertThatThrownBy(() -> s.put(nan)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("float 5 is NaN").hasMessageContaining("int8");
            assertThat(s.contains(key(7))).isFalse();
            assertThat(s.dram().blockCount()).isZero();

            f[5] = Float.POSITIVE_INFINITY;
            assertThatThrownBy(() -> s.put(KvBlock.of(key(7), LAYOUT, f)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("Infinity");
            // Finite blocks still go to DRAM, and are demoted as int8.
            assertThat(s.put(block(1)).result()).isEqualTo(PutResult.STORED);
            assertThat(s.demoteAll()).isEqualTo(1);
            assertThat(ssd.contains(key(1))).isTrue();
        }
    }
}
