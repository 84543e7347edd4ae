package io.moemesh.model.kv;

import static io.moemesh.model.kv.KvDriver.B;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepContext;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The prefix cache as a plain object, 4-token blocks: sharing, counts, eviction, salts, and the bad cases. */
class PrefixCachingKvCacheTest {
    private KvDriver kv = new KvDriver(16);

    @AfterEach
    void everyBlockAccountedFor() {
        kv.assertAccounted();
    }

    /**
     * Wants every full block past {@code threshold} positions remote but {@code keepLocal}; its offloads stay in
     * flight (which {@link BlockOffload#offload} allows no real offload: these tests step the cache by hand, and no
     * scheduler waits for them).
     */
    private static BlockOffload policy(int threshold, int keepLocal) {
        return policy(threshold, keepLocal, false);
    }

    /** The same, its offloads stored at once when {@code stores}. */
    private static BlockOffload policy(int threshold, int keepLocal, boolean stores) {
        return new BlockOffload() {
            @Override
            public int remoteBlocks(int length) {
                return length < threshold ? 0 : Math.max(0, length / B - keepLocal);
            }

            @Override
            public java.util.concurrent.CompletableFuture<Outcome> offload(long seqId, List<BlockHash> hashes,
                                                                           List<BlockContents> copies) {
                return stores ? java.util.concurrent.CompletableFuture.completedFuture(Outcome.PINNED)
                        : new java.util.concurrent.CompletableFuture<>();
            }

            @Override
            public void released(long seqId) {
            }
        };
    }

    @Test
    void maxSequencePositions_isThePool_unlessTheOffloadMovesBlocksOfASequenceThatFillsIt() {
        assertThat(kv.cache.maxSequencePositions()).isEqualTo(16 * B);
        assertThat(kv.cache.offloadsWhenFull(policy(16 * B, 15))).isTrue();
        assertThat(kv.cache.offloadsWhenFull(policy(16 * B + 1, 0))).isFalse();
        assertThat(kv.cache.offloadsWhenFull(policy(1, 16))).isFalse();
        assertThat(kv.cache.offloadsWhenFull(BlockOffload.NONE)).isFalse();
        kv.cache.setBlockOffload(policy(16 * B, 15));
        assertThat(kv.cache.maxSequencePositions()).as("offloads one block of a full pool")
                .isEqualTo(Integer.MAX_VALUE);
        kv.cache.setBlockOffload(policy(16 * B + 1, 0));
        assertThat(kv.cache.maxSequencePositions()).as("threshold past the pool").isEqualTo(16 * B);
        kv.cache.setBlockOffload(policy(1, 16));
        assertThat(kv.cache.maxSequencePositions()).as("keeps the whole pool local").isEqualTo(16 * B);
        kv.cache.setBlockOffload(BlockOffload.NONE);
        assertThat(kv.cache.maxSequencePositions()).isEqualTo(16 * B);
    }

    /**
     * A follow-up turn whose 60-block history is still cached here, and stored in the offload's tier: its first step
     * hands the offload that history by hash, and copies none of it (before, every block up to the policy's target
     * was copied on the engine thread and held until the offload's Pin answered, once per such sequence).
     */
    @Test
    void aFollowUpTurnWhoseHistoryTheOffloadHolds_isOffloadedWithoutACopy() {
        kv = new KvDriver(64);
        int[] history = KvDriver.tokens(60 * B + 2, 6);
        kv.prefill(1, history, "t");
        kv.cache.release(1);
        List<List<BlockHash>> runs = new java.util.ArrayList<>();
        List<List<BlockContents>> copies = new java.util.ArrayList<>();
        kv.cache.setBlockOffload(new BlockOffload() {
            @Override
            public int remoteBlocks(int length) {
                return length < 8 * B ? 0 : length / B - 2;
            }

            @Override
            public boolean needsCopy(BlockHash hash) {
                return false; // its tier stores every block already
            }

            @Override
            public java.util.concurrent.CompletableFuture<Outcome> offload(long seqId, List<BlockHash> hashes,
                                                                           List<BlockContents> copied) {
                runs.add(hashes);
                copies.add(copied);
                return new java.util.concurrent.CompletableFuture<>();
            }

            @Override
            public void released(long seqId) {
            }
        });
        int[] turn = Arrays.copyOf(history, 60 * B + 6);
        Arrays.fill(turn, 60 * B, turn.length, 5);

        assertThat(kv.admit(2, turn, "t")).isEqualTo(60 * B);
        kv.step(2, turn, 60 * B, turn.length, "t", true);

        assertThat(runs).singleElement().satisfies(run -> assertThat(run).hasSize(59));
        assertThat(copies).singleElement().satisfies(c -> assertThat(c).isEmpty());
        kv.cache.release(2);
    }

    @Test
    void offloadPending_whileAnOffloadOfTheSequenceIsInFlight() {
        kv.cache.setBlockOffload(policy(2 * B, 0));
        int[] prompt = KvDriver.tokens(3 * B, 4);
        kv.admit(1, prompt, "t");
        kv.step(1, prompt, 0, B, "t", true);
        assertThat(kv.cache.offloadPending(1)).as("below the threshold").isFalse();
        kv.step(1, prompt, B, 2 * B, "t", true);
        assertThat(kv.cache.offloadPending(1)).isTrue();
        assertThat(kv.cache.offloadPending(2)).as("unknown").isFalse();
        kv.cache.release(1);
        assertThat(kv.cache.offloadPending(1)).isFalse();
    }

    @Test
    void samePrefixComputedSideBySide_theSecondsBlocksKeepTheirHash_soTheyCanBeOffloaded_andItsReleaseKeepsTheFirsts() {
        kv.cache.setBlockOffload(policy(2 * B, 1, true));
        int[] prompt = KvDriver.tokens(3 * B, 5);
        assertThat(kv.admit(1, prompt, "t")).isZero();
        assertThat(kv.admit(2, prompt, "t")).as("both miss: neither has computed it yet").isZero();
        kv.step(1, prompt, 0, 3 * B, "t", true);
        kv.step(2, prompt, 0, 3 * B, "t", true);
        int[] firsts = kv.cache.blockTable(1).clone();

        assertThat(kv.cache.ensureCapacity(2, 3 * B + 1)).isTrue();

        assertThat(kv.cache.remotePrefix(2)).as("the second's duplicates offloaded too").isEqualTo(2 * B);
        assertThat(kv.cache.remotePrefix(1)).isZero();
        assertThat(kv.cache.ensureCapacity(1, 3 * B + 1)).isTrue();
        assertThat(kv.cache.remotePrefix(1)).isEqualTo(2 * B);
        kv.cache.release(2);
        kv.assertAccounted();
        kv.cache.release(1);
        assertThat(kv.admit(3, prompt, "t")).as("the first's blocks are still found").isEqualTo(2 * B);
        assertThat(kv.cache.blockTable(3)[0]).isEqualTo(firsts[0]);
        assertThat(kv.cache.blockTable(3)[1]).isEqualTo(firsts[1]);
        kv.cache.release(3);
    }

    @Test
    void samePromptTwice_secondSharesTheFirstsFullBlocks_whileBothRun() {
        int[] prompt = KvDriver.tokens(10, 1);
        assertThat(kv.prefill(1, prompt, "t")).isZero();
        assertThat(kv.cache.usedBlocks()).isEqualTo(3);
        assertThat(kv.prefill(2, prompt, "t")).isEqualTo(8);
        // blocks 0 and 1 shared, each sequence its own third block
        assertThat(kv.cache.blockTable(2)[0]).isEqualTo(kv.cache.blockTable(1)[0]);
        assertThat(kv.cache.blockTable(2)[1]).isEqualTo(kv.cache.blockTable(1)[1]);
        assertThat(kv.cache.blockTable(2)[2]).isNotEqualTo(kv.cache.blockTable(1)[2]);
        assertThat(kv.cache.usedBlocks()).isEqualTo(4);
        kv.assertHolds(1, prompt, 10);
        kv.assertHolds(2, prompt, 10);
        assertThat(kv.cache.lookedUpTokens()).isEqualTo(20);
        assertThat(kv.cache.servedTokens()).isEqualTo(8);
    }

    @Test
    void aSharedBlock_staysHeldUntilItsLastHolderReleasesIt_thenIsCached() {
        int[] prompt = KvDriver.tokens(9, 2);
        kv.prefill(1, prompt, "t");
        kv.prefill(2, prompt, "t");
        kv.prefill(3, prompt, "t");
        kv.cache.release(2);
        kv.assertAccounted();
        assertThat(kv.cache.cachedBlocks()).isZero();
        kv.assertHolds(1, prompt, 9);
        kv.cache.release(1);
        kv.assertAccounted();
        // sequence 3 still holds the two shared blocks and its own third one
        assertThat(kv.cache.usedBlocks()).isEqualTo(3);
        kv.assertHolds(3, prompt, 9);
        kv.cache.release(3);
        assertThat(kv.cache.usedBlocks()).isZero();
        assertThat(kv.cache.cachedBlocks()).isEqualTo(2);
    }

    @Test
    void aSequenceCancelledWhileItsBlocksAreShared_leavesTheOtherIntact_andNothingIsFreedTwice() {
        int[] prompt = KvDriver.tokens(12, 3);
        kv.prefill(1, prompt, "t");
        int cached = kv.prefill(2, prompt, "t");
        assertThat(cached).isEqualTo(8);
        kv.cache.release(1); // cancelled mid-generation: its blocks are still sequence 2's
        kv.cache.release(1); // a second release of the same id changes nothing
        kv.assertAccounted();
        // sequence 2 goes on decoding into its own blocks
        int[] longer = Arrays.copyOf(prompt, 14);
        longer[12] = 5;
        longer[13] = 6;
        kv.step(2, longer, 12, 14, "t", true);
        kv.assertHolds(2, longer, 14);
        kv.cache.release(2);
        assertThat(kv.cache.usedBlocks()).isZero();
    }

    @ParameterizedTest(name = "{0}-token prompt, {1} cached on repeat")
    @CsvSource({
        "1, 0",   // shorter than one block
        "3, 0",
        "4, 0",   // exactly one block: its last token must be computed, so nothing is reused
        "5, 4",
        "8, 4",   // whole prompt cached: stops one block early
        "9, 8",
        "12, 8",
        "13, 12"})
    void repeatedPrompt_reusesItsFullBlocksBeforeTheLastToken(int length, int expected) {
        int[] prompt = KvDriver.tokens(length, 4);
        kv.prefill(1, prompt, "t");
        kv.cache.release(1);
        int cached = kv.prefill(2, prompt, "t");
        assertThat(cached).isEqualTo(expected).isLessThan(length);
        kv.assertHolds(2, prompt, length);
        kv.cache.release(2);
    }

    @Test
    void aWholeCachedPrompt_getsAFreshBlockForItsLastToken_neverWritesTheSharedOne() {
        int[] prompt = KvDriver.tokens(8, 5);
        kv.prefill(1, prompt, "t");
        assertThat(kv.prefill(2, prompt, "t")).isEqualTo(4);
        assertThat(kv.cache.blockTable(2)[1]).isNotEqualTo(kv.cache.blockTable(1)[1]);
        kv.assertHolds(1, prompt, 8);
        kv.assertHolds(2, prompt, 8);
    }

    @Test
    void aStepThatWouldWriteIntoABlockWithAHash_isRefusedBeforeAnythingIsComputed() {
        int[] prompt = KvDriver.tokens(8, 6);
        kv.prefill(1, prompt, "t");
        StepContext rewrite = StepContext.of(List.of(new SequenceStep(1, new int[] {1, 2}, 2, SequenceStep.Logits.LAST,
                false, "t", SequenceStep.Phase.PREFILL)));
        assertThatThrownBy(() -> kv.cache.stepStarted(rewrite)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("sequence 1 would write positions [2, 4) into its block 0");
    }

    @ParameterizedTest(name = "{0} / {1}")
    @CsvSource({"alice, bob", "alice, ''", "'', default", "alice, Alice"})
    void tenantsNeverShare_theSameTenantDoes(String a, String b) {
        int[] prompt = KvDriver.tokens(12, 7);
        kv.prefill(1, prompt, a);
        kv.cache.release(1);
        assertThat(kv.prefill(2, prompt, b)).isZero();
        assertThat(kv.prefill(3, prompt, a)).isEqualTo(8);
        assertThat(kv.prefill(4, prompt, b)).isEqualTo(8);
        for (long id = 2; id <= 4; id++) {
            kv.assertHolds(id, prompt, 12);
            kv.cache.release(id);
        }
    }

    @Test
    void aTenantFromTheStep_saltsABlockNoAdmissionLookedUp() {
        // A traced request is never looked up (the scheduler skips the prefix source); its blocks still count.
        int[] prompt = KvDriver.tokens(9, 8);
        kv.step(1, prompt, 0, 9, "alice", true);
        kv.cache.release(1);
        assertThat(kv.prefill(2, prompt, "bob")).isZero();
        assertThat(kv.prefill(3, prompt, "alice")).isEqualTo(8);
        kv.cache.release(2);
        kv.cache.release(3);
    }

    @Test
    void blocksOfAFailedStep_areNeverFound_andGoBackToTheFreeList() {
        int[] prompt = KvDriver.tokens(12, 9);
        kv.admit(1, prompt, "t");
        kv.step(1, prompt, 0, 12, "t", false);
        kv.cache.release(1);
        assertThat(kv.cache.cachedBlocks()).isZero();
        assertThat(kv.cache.freeBlocks()).isEqualTo(16);
        assertThat(kv.prefill(2, prompt, "t")).isZero();
        kv.assertHolds(2, prompt, 12);
        kv.cache.release(2);
    }

    @Test
    void onlyTheCompletedSteps_blocksAreFound_whenALaterChunkFails() {
        int[] prompt = KvDriver.tokens(16, 10);
        kv.admit(1, prompt, "t");
        kv.step(1, prompt, 0, 8, "t", true);
        kv.step(1, prompt, 8, 16, "t", false);
        kv.cache.release(1);
        assertThat(kv.prefill(2, prompt, "t")).isEqualTo(8);
        kv.assertHolds(2, prompt, 16);
        kv.cache.release(2);
    }

    @Test
    void eviction_takesFreeBlocksFirst_thenTheLeastRecentlyReleased_tailBlocksBeforeTheirPrefix() {
        kv = new KvDriver(8);
        int[] a = KvDriver.tokens(12, 11); // 3 full blocks
        int[] b = KvDriver.tokens(8, 12);  // 2 full blocks
        kv.prefill(1, a, "t");
        kv.prefill(2, b, "t");
        int[] aBlocks = Arrays.copyOf(kv.cache.blockTable(1), 3);
        int[] bBlocks = Arrays.copyOf(kv.cache.blockTable(2), 2);
        kv.cache.release(1);
        kv.cache.release(2);
        assertThat(kv.cache.lruOrder()).containsExactly(aBlocks[2], aBlocks[1], aBlocks[0], bBlocks[1], bBlocks[0]);
        assertThat(kv.cache.freeBlocks()).isEqualTo(3);

        // 4 new blocks: the 3 free ones, then a's last block
        int[] c = KvDriver.tokens(16, 13);
        kv.prefill(3, c, "t");
        assertThat(kv.cache.lruOrder()).containsExactly(aBlocks[1], aBlocks[0], bBlocks[1], bBlocks[0]);
        kv.cache.release(3);
        assertThat(kv.prefill(4, a, "t")).as("a lost its last block, kept its first two").isEqualTo(8);
        assertThat(kv.prefill(5, b, "t")).isEqualTo(4);
        kv.assertHolds(4, a, 12);
        kv.assertHolds(5, b, 8);
        kv.cache.release(4);
        kv.cache.release(5);
    }

    @Test
    void aHitMovesTheBlockOutOfTheLru_soItIsNotEvictedWhileHeld() {
        kv = new KvDriver(5);
        int[] a = KvDriver.tokens(8, 14);
        kv.prefill(1, a, "t");
        kv.cache.release(1);
        assertThat(kv.prefill(2, a, "t")).isEqualTo(4);
        // a 12-token prompt takes the two free blocks and evicts a's second (cached), never its first (held)
        int[] c = KvDriver.tokens(12, 15);
        kv.prefill(3, c, "t");
        kv.assertHolds(2, a, 8);
        kv.assertHolds(3, c, 12);
        assertThat(kv.cache.ensureCapacity(3, 13)).isFalse();
        kv.cache.release(2);
        kv.cache.release(3);
    }

    @Test
    void aPromptWhoseCachedPrefixWasEvicted_getsLess_andComputesTheRestCorrectly() {
        kv = new KvDriver(6);
        int[] a = KvDriver.tokens(20, 16);
        kv.prefill(1, a, "t");
        kv.cache.release(1);
        assertThat(kv.cache.cachedBlocks()).isEqualTo(5);
        // another prompt needs 3 blocks: the free one, then a's last two
        int[] c = KvDriver.tokens(9, 17);
        kv.prefill(2, c, "t");
        kv.cache.release(2);
        int cached = kv.prefill(3, a, "t");
        assertThat(cached).isEqualTo(12);
        kv.assertHolds(3, a, 20);
        kv.cache.release(3);
    }

    @Test
    void ensureCapacity_withoutRoom_changesNothing() {
        kv = new KvDriver(3);
        int[] a = KvDriver.tokens(8, 18);
        kv.prefill(1, a, "t");
        kv.cache.release(1);
        kv.admit(2, a, "t");
        int cached = kv.cache.cachedBlocks();
        int free = kv.cache.freeBlocks();
        assertThat(kv.cache.ensureCapacity(2, 17)).isFalse();
        assertThat(kv.cache.cachedBlocks()).isEqualTo(cached);
        assertThat(kv.cache.freeBlocks()).isEqualTo(free);
        assertThat(kv.cache.ensureCapacity(2, 12)).isTrue();
        kv.cache.release(2);
    }

    @Test
    void twoSequencesComputingTheSamePrefixInOneStep_registerItOnce_theDuplicateIsFreedPlainly() {
        int[] prompt = KvDriver.tokens(8, 19);
        kv.admit(1, prompt, "t");
        kv.admit(2, prompt, "t");
        kv.step(1, prompt, 0, 8, "t", true);
        kv.step(2, prompt, 0, 8, "t", true);
        kv.cache.release(1);
        kv.cache.release(2);
        assertThat(kv.cache.cachedBlocks()).isEqualTo(2);
        assertThat(kv.cache.freeBlocks()).isEqualTo(14);
        assertThat(kv.prefill(3, KvDriver.tokens(9, 19), "t")).isEqualTo(8);
        kv.cache.release(3);
    }

    @Test
    void decodeSteps_fillBlocksThatLaterPromptsFind() {
        int[] conversation = KvDriver.tokens(11, 20);
        kv.prefill(1, Arrays.copyOf(conversation, 6), "t");
        for (int p = 6; p < 11; p++) {
            kv.step(1, conversation, p, p + 1, "t", true);
        }
        kv.cache.release(1);
        assertThat(kv.prefill(2, conversation, "t")).isEqualTo(8);
        kv.assertHolds(2, conversation, 11);
        kv.cache.release(2);
    }

    @Test
    void disabled_isAPlainPagedCache_nothingLookedUpOrCached() {
        kv = new KvDriver(8, false);
        int[] prompt = KvDriver.tokens(12, 21);
        kv.prefill(1, prompt, "t");
        kv.cache.release(1);
        assertThat(kv.prefill(2, prompt, "t")).isZero();
        kv.assertHolds(2, prompt, 12);
        kv.cache.release(2);
        assertThat(kv.cache.cachedBlocks()).isZero();
        assertThat(kv.cache.freeBlocks()).isEqualTo(8);
        assertThat(kv.cache.lookedUpTokens()).isZero();
    }

    @Test
    void admittingASequenceThatStillHoldsBlocks_isAScheduleBug() {
        int[] prompt = KvDriver.tokens(5, 22);
        kv.prefill(1, prompt, "t");
        assertThatThrownBy(() -> kv.admit(1, prompt, "t")).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("release it before admitting it again");
        kv.cache.release(1);
    }
}
