package io.moemesh.kvcache.policy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.tier.FsyncPolicy;
import io.moemesh.kvcache.tier.PutResult;
import io.moemesh.kvcache.tier.SsdConfig;
import io.moemesh.kvcache.tier.SsdTier;
import io.moemesh.kvcache.tier.TieredKvStore;
import java.nio.file.Path;
import java.util.concurrent.ConcurrentLinkedQueue;
import io.moemesh.kvcache.tier.TestBlocks;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

class ConversationPolicyTest {

    private static List<BlockKey> chain(long... ids) {
        List<BlockKey> c = new ArrayList<>();
        for (long id : ids) {
            c.add(TestBlocks.key(id));
        }
        return c;
    }

    private static void insert(EvictionPolicy view, List<BlockKey> chain) {
        for (int j = 0; j < chain.size(); j++) {
            view.onInsert(BlockHistory.inserted(chain.get(j), 1, 0, AccessHint.atChainPosition(j)));
        }
    }

    @Test
    void tierView_evictsTheOldestRequestFirst_andAChainsTailBeforeItsHead() {
        ConversationPolicy policy = new ConversationPolicy(100, new double[] {0});
        EvictionPolicy view = policy.newTierPolicy();
        List<BlockKey> first = chain(1, 2, 3);
        policy.observe(first);
        insert(view, first);
        List<BlockKey> second = chain(7, 8);
        policy.observe(second);
        insert(view, second);

        List<BlockKey> order = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            BlockKey v = view.victim(k -> true).orElseThrow();
            order.add(v);
            view.onRemove(v);
        }
        assertThat(order).containsExactly(TestBlocks.key(3), TestBlocks.key(2), TestBlocks.key(1),
                TestBlocks.key(8), TestBlocks.key(7));
        assertThat(view.victim(k -> true)).isEmpty();
    }

    @Test
    void tierView_skipsBlocksTheTierRefuses() {
        ConversationPolicy policy = new ConversationPolicy(100, new double[] {0});
        EvictionPolicy view = policy.newTierPolicy();
        List<BlockKey> c = chain(1, 2);
        policy.observe(c);
        insert(view, c);
        assertThat(view.victim(k -> !k.equals(TestBlocks.key(2)))).contains(TestBlocks.key(1));
        assertThat(view.victim(k -> false)).isEmpty();
    }

    @Test
    void secondTurn_outranksANewerFirstTurn_onceContinuationIsLearned() {
        // 40 conversations whose first turn always gets a second, among twice as many one-shot chains: a first
        // turn continues a third of the time, a second turn (extending the first's chain) every time.
        ConversationPolicy policy = new ConversationPolicy(50, new double[] {10});
        long id = 1000;
        for (int c = 0; c < 40; c++) {
            long a = id++;
            policy.observe(chain(0, a));
            policy.observe(chain(0, id++));
            policy.observe(chain(0, a, id++));
            policy.observe(chain(0, a, id++, id++));
            policy.observe(chain(0, id++));
        }
        EvictionPolicy view = policy.newTierPolicy();
        long head = id++;
        policy.observe(chain(0, head));
        List<BlockKey> second = chain(0, head, id++);
        policy.observe(second);
        insert(view, second.subList(1, 3));
        List<BlockKey> fresh = chain(0, id++);
        policy.observe(fresh); // a newer first turn
        view.onInsert(BlockHistory.inserted(fresh.get(1), 1, 0, AccessHint.atChainPosition(1)));

        assertThat(view.victim(k -> true)).contains(fresh.get(1));
    }

    /**
     * 40 conversations whose second turn came 10 s after the first and always got a third, 40 whose second came
     * 300 s after and never did; then one of each again, the slow one 300 block touches newer: with arrival times
     * the quick one's chain is kept over the newer slow one's, without them (one class per turn) recency decides.
     */
    @ParameterizedTest(name = "arrival times known: {0}")
    @ValueSource(booleans = {true, false})
    void laterTurn_thatCameBackQuickly_outranksANewerSlowOne_onlyWithArrivalTimes(boolean timed) {
        ConversationPolicy policy = new ConversationPolicy(1000, new double[] {10});
        long id = 1000;
        long t = 0;
        for (int c = 0; c < 40; c++, t += 1_000_000) {
            long a = id++;
            long x = id++;
            policy.observe(chain(0, a), at(timed, t));
            policy.observe(chain(0, a, x), at(timed, t + 10_000));
            policy.observe(chain(0, a, x, id++), at(timed, t + 20_000));
            long b = id++;
            policy.observe(chain(0, b), at(timed, t + 30_000));
            policy.observe(chain(0, b, id++), at(timed, t + 330_000));
        }
        EvictionPolicy view = policy.newTierPolicy();
        long quickHead = id++;
        long slowHead = id++;
        policy.observe(chain(0, quickHead), at(timed, t));
        policy.observe(chain(0, slowHead), at(timed, t + 1));
        List<BlockKey> quick = chain(0, quickHead, id++);
        policy.observe(quick, at(timed, t + 10_000));
        insert(view, quick.subList(1, 3));
        for (int f = 0; f < 100; f++) {
            policy.observe(chain(id++, id++, id++), at(timed, t + 20_000));
        }
        List<BlockKey> slow = chain(0, slowHead, id++);
        policy.observe(slow, at(timed, t + 301_000));
        insert(view, slow.subList(1, 3));

        assertThat(view.victim(k -> true)).contains(timed ? slow.get(2) : quick.get(2));
    }

    private static long at(boolean timed, long millis) {
        return timed ? millis : -1;
    }

    /**
     * Capacity 10: a next turn counts only within 40 block touches. Every second turn here gets a third, right away
     * or after 50 one-block fillers (50 touches): only the first counts as a continuation.
     */
    @ParameterizedTest(name = "{0} fillers before the third turn")
    @CsvSource({"0, true", "50, false"})
    void continuationAfterTheHorizon_doesNotCount(int fillers, boolean counted) {
        ConversationPolicy policy = new ConversationPolicy(10, new double[] {0});
        long id = 1000;
        for (int c = 0; c < 40; c++) {
            long a = id++;
            long x = id++;
            policy.observe(chain(0, a));
            policy.observe(chain(0, a, x));
            for (int f = 0; f < fillers; f++) {
                policy.observe(chain(id++));
            }
            policy.observe(chain(0, a, x, id++));
        }
        // The class estimate (all 40 second turns are in think-time class 0) smoothed towards the turn's
        // Laplace-smoothed rate with 20 pseudo-requests: 41/42 when all 40 count, 1/42 when none does.
        double turn = counted ? 41.0 / 42 : 1.0 / 42;
        assertThat(policy.continuationOfTurn(1)).isCloseTo(((counted ? 40 : 0) + 20 * turn) / 60, within(1e-9));
    }

    @Test
    void withoutTurnBonus_theNewerFirstTurnIsKept() {
        ConversationPolicy policy = new ConversationPolicy(50, new double[] {0});
        EvictionPolicy view = policy.newTierPolicy();
        long id = 1000;
        long head = id++;
        policy.observe(chain(0, head));
        List<BlockKey> second = chain(0, head, id++);
        policy.observe(second);
        insert(view, second.subList(1, 3));
        List<BlockKey> fresh = chain(0, id++);
        policy.observe(fresh);
        view.onInsert(BlockHistory.inserted(fresh.get(1), 1, 0, AccessHint.atChainPosition(1)));

        assertThat(view.victim(k -> true)).contains(second.get(2));
    }

    @Test
    void lastBlock_declined_onceLearnedThatLastBlocksAreNotReused() {
        ConversationPolicy policy = new ConversationPolicy(1000);
        long id = 1;
        for (int c = 0; c < ConversationPolicy.LAST_BLOCK_EVIDENCE; c++) {
            long head = id++;
            policy.observe(chain(0, head, id++));
            policy.observe(chain(0, head, id++, id++)); // reuses the head, never the first turn's last block
        }
        List<BlockKey> next = chain(0, id, id + 1);
        policy.observe(next);

        assertThat(policy.admit(next.get(2), AccessHint.atChainPosition(2))).isFalse();
        assertThat(policy.admit(next.get(1), AccessHint.atChainPosition(1))).isTrue();
        assertThat(policy.admit(next.get(0), AccessHint.NONE)).isTrue();
    }

    @Test
    void aDeclinedLastBlock_isStoredAllTheSame_whenItsPutIsPinnedNext_soTheAttendOffloadCanPinIt(@TempDir Path dir) {
        ConversationPolicy policy = new ConversationPolicy(1000);
        SsdTier ssd = SsdTier.open(SsdConfig.defaults(dir, 16L * TestBlocks.RECORD_BYTES)
                .withFsync(FsyncPolicy.NEVER), TestBlocks.LAYOUT, TestBlocks.MODEL, policy.newTierPolicy());
        try (TieredKvStore store = new TieredKvStore(TestBlocks.LAYOUT, 8L * TestBlocks.BLOCK_BYTES,
                policy.newTierPolicy(), ssd, policy, policy, System::nanoTime)) {
            long id = 1;
            for (int c = 0; c < ConversationPolicy.LAST_BLOCK_EVIDENCE; c++) {
                long head = id++;
                store.observe(chain(0, head, id++), -1);
                store.observe(chain(0, head, id++, id++), -1);
            }
            // The gateway's Lookup announces the sequence; its Attend offload then stores the chain and pins it.
            long head = id++;
            long last = id;
            store.observe(chain(0, head, last), -1);
            AccessHint at2 = AccessHint.atChainPosition(2);
            assertThat(store.put(TestBlocks.block(last), at2).result()).as("an ordinary put: the policy declines")
                    .isEqualTo(PutResult.DECLINED);

            assertThat(store.put(TestBlocks.block(last), at2, true).result()).isEqualTo(PutResult.STORED);
            assertThat(store.pin(TestBlocks.key(last))).isTrue();
            assertThat(store.stats().declined()).isEqualTo(1);
        }
    }

    @Test
    void lastBlocks_ofInterleavedRequests_areEachDeclined_untilTheirKeyIsObservedAgainInAnotherPosition() {
        ConversationPolicy policy = new ConversationPolicy(1000);
        long id = 1;
        for (int c = 0; c < ConversationPolicy.LAST_BLOCK_EVIDENCE; c++) {
            long head = id++;
            policy.observe(chain(0, head, id++));
            policy.observe(chain(0, head, id++, id++));
        }
        // Two requests' Lookups arrive before either's puts (the service's concurrent requests).
        List<BlockKey> a = chain(0, id++, id++);
        List<BlockKey> b = chain(0, id++, id++);
        policy.observe(a);
        policy.observe(b);
        assertThat(policy.admit(a.get(2), AccessHint.NONE)).isFalse();
        assertThat(policy.admit(b.get(2), AccessHint.NONE)).isFalse();
        // A chain that has a's last block inside it: its own decisions count, the block is admitted.
        policy.observe(List.of(a.get(0), a.get(1), a.get(2), TestBlocks.key(id++), TestBlocks.key(id)));
        assertThat(policy.admit(a.get(2), AccessHint.NONE)).isTrue();
    }

    @Test
    void theSameChainAnnouncedTwice_isNotANextTurn() {
        ConversationPolicy policy = new ConversationPolicy(1000);
        List<BlockKey> first = chain(0, 1, 2);
        policy.observe(first);
        double before = policy.continuationOfTurn(0);
        policy.observe(first); // a second Lookup of the same request
        assertThat(policy.continuationOfTurn(0)).isEqualTo(before);
        policy.observe(chain(0, 1, 2, 3)); // its real next turn
        assertThat(policy.continuationOfTurn(0)).isGreaterThan(before);
    }

    @Test
    void blocksNoLookupAnnounced_areEvictedLeastRecentlyUsedFirst() {
        ConversationPolicy policy = new ConversationPolicy(100);
        EvictionPolicy view = policy.newTierPolicy();
        insert(view, chain(1, 2, 3)); // puts without a prior observe, block 1 first

        assertThat(view.victim(k -> true)).contains(TestBlocks.key(1));
    }

    @Test
    void lastBlock_admitted_whileEvidenceIsShort() {
        ConversationPolicy policy = new ConversationPolicy(1000);
        List<BlockKey> c = chain(0, 1, 2);
        policy.observe(c);
        assertThat(policy.admit(c.get(2), AccessHint.NONE)).isTrue();
    }

    @Test
    void capacity_mustBePositive() {
        assertThatThrownBy(() -> new ConversationPolicy(0)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("capacityBlocks");
    }

    /** A random multi-turn trace: conversations extend their previous chain, one shared first block. */
    static List<List<Long>> conversations(long seed, int requests) {
        Random r = new Random(seed);
        List<List<Long>> open = new ArrayList<>();
        List<List<Long>> trace = new ArrayList<>();
        long next = 1;
        for (int i = 0; i < requests; i++) {
            List<Long> chain;
            if (!open.isEmpty() && r.nextInt(3) > 0) {
                int c = r.nextInt(open.size());
                List<Long> prev = open.get(c);
                chain = new ArrayList<>(prev.subList(0, prev.size() - 1));
                for (int k = 1 + r.nextInt(4); k > 0; k--) {
                    chain.add(next++);
                }
                if (r.nextInt(4) == 0) {
                    open.remove(c);
                } else {
                    open.set(c, chain);
                }
            } else {
                chain = new ArrayList<>(List.of(0L));
                for (int k = 1 + r.nextInt(6); k > 0; k--) {
                    chain.add(next++);
                }
                open.add(chain);
            }
            trace.add(chain);
        }
        return trace;
    }

    @Property(tries = 20)
    void shadowsAndViews_keepTheirCapacity_andDecisionsDependOnlyOnThePast(
            @ForAll @IntRange(min = 1, max = 40) int capacity, @ForAll long seed) {
        List<List<Long>> trace = conversations(seed, 300);
        ConversationPolicy full = new ConversationPolicy(capacity);
        ConversationPolicy half = new ConversationPolicy(capacity);
        Map<Integer, Double> strengths = new HashMap<>();
        for (int i = 0; i < trace.size(); i++) {
            List<BlockKey> c = trace.get(i).stream().map(TestBlocks::key).toList();
            full.observe(c);
            if (i < 150) {
                half.observe(c);
                assertThat(half.strength()).isEqualTo(full.strength());
                for (BlockKey k : c) {
                    assertThat(half.admit(k, AccessHint.NONE)).isEqualTo(full.admit(k, AccessHint.NONE));
                }
            }
            strengths.put(i, full.strength());
        }
        Set<Double> known = new HashSet<>();
        for (double s : ConversationPolicy.STRENGTHS) {
            known.add(s);
        }
        assertThat(known).containsAll(strengths.values());
    }

    @Test
    void sharedByBothTiers_underConcurrentReadersAndWriters_keepsTheStoreWithinCapacity(@TempDir Path dir)
            throws InterruptedException {
        // DRAM hits hold only DRAM's monitor and SSD reads only the SSD's: both views share the policy's state.
        ConversationPolicy policy = new ConversationPolicy(24);
        SsdTier ssd = SsdTier.open(SsdConfig.defaults(dir, 16L * TestBlocks.RECORD_BYTES)
                .withFsync(FsyncPolicy.NEVER), TestBlocks.LAYOUT, TestBlocks.MODEL, policy.newTierPolicy());
        List<List<Long>> trace = conversations(5, 400);
        ConcurrentLinkedQueue<Throwable> failures = new ConcurrentLinkedQueue<>();
        try (TieredKvStore store = new TieredKvStore(TestBlocks.LAYOUT, 8L * TestBlocks.BLOCK_BYTES,
                policy.newTierPolicy(), ssd, policy, System::nanoTime)) {
            List<Thread> threads = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                int offset = t;
                threads.add(Thread.ofPlatform().start(() -> {
                    try {
                        for (int i = offset; i < trace.size(); i += 4) {
                            List<BlockKey> c = trace.get(i).stream().map(TestBlocks::key).toList();
                            policy.observe(c);
                            for (int j = 0; j < c.size(); j++) {
                                if (store.get(c.get(j), AccessHint.atChainPosition(j)).isEmpty()) {
                                    store.put(TestBlocks.block(trace.get(i).get(j)), AccessHint.atChainPosition(j));
                                }
                            }
                        }
                    } catch (Throwable e) {
                        failures.add(e);
                    }
                }));
            }
            for (Thread t : threads) {
                t.join();
            }
            assertThat(failures).isEmpty();
            assertThat(store.dram().blockCount()).isLessThanOrEqualTo(8);
            assertThat(store.lower().blockCount()).isLessThanOrEqualTo(16);
        }
    }
}
