package io.moemesh.kvcache.policy;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.tier.TestBlocks;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

class PolicyTest {
    private static BlockHistory h(long i, long t) {
        return BlockHistory.inserted(TestBlocks.key(i), 1, t, AccessHint.NONE);
    }

    @Test
    void lru_evictsLeastRecentlyUsed_skippingRefusedBlocks() {
        LruPolicy lru = new LruPolicy();
        for (int i = 0; i < 4; i++) {
            lru.onInsert(h(i, i));
        }
        lru.onAccess(h(0, 10));
        assertThat(lru.victim(k -> true)).contains(TestBlocks.key(1));
        assertThat(lru.victim(k -> !k.equals(TestBlocks.key(1)))).contains(TestBlocks.key(2));
        lru.onRemove(TestBlocks.key(1));
        lru.onRemove(TestBlocks.key(2));
        assertThat(lru.victim(k -> true)).contains(TestBlocks.key(3));
        assertThat(lru.victim(k -> false)).isEmpty();
    }

    @Test
    void history_countsAccesses_andKeepsAKnownChainPosition() {
        BlockHistory b = BlockHistory.inserted(TestBlocks.key(1), 512, 5, AccessHint.atChainPosition(3));
        BlockHistory a = b.accessed(9, AccessHint.NONE);
        assertThat(a.accessCount()).isEqualTo(2);
        assertThat(a.firstAccess()).isEqualTo(5);
        assertThat(a.lastAccess()).isEqualTo(9);
        assertThat(a.chainPosition()).isEqualTo(3);
        assertThat(a.accessed(10, AccessHint.atChainPosition(4)).chainPosition()).isEqualTo(4);
    }

    @Test
    void belady_knownTrace_hitsTheOptimum() {
        // Capacity 2, a b c a b: at c MIN evicts b (next used at 4, a at 3), so a hits and b misses: 1 hit.
        assertThat(BeladyOracle.hits(List.of("a", "b", "c", "a", "b"), 2)).isEqualTo(1);
        assertThat(BeladyOracle.hits(List.of("a", "b", "a", "b", "c", "a"), 2)).isEqualTo(3);
        assertThat(BeladyOracle.hits(List.of("a", "a", "a"), 1)).isEqualTo(2);
    }

    @Property(tries = 60)
    void lru_neverBeatsBelady_andBothAreBoundedByReuse(@ForAll @IntRange(min = 1, max = 12) int capacity,
                                                       @ForAll @IntRange(min = 2, max = 40) int keys,
                                                       @ForAll long seed) {
        Random r = new Random(seed);
        List<Long> trace = new ArrayList<>();
        for (int i = 0; i < 300; i++) {
            // Zipf-ish: small keys are hot, as prefix blocks near a chain's start are.
            trace.add((long) Math.min(keys - 1, (int) Math.abs(r.nextGaussian() * keys / 3)));
        }
        long optimum = BeladyOracle.hits(trace, capacity);
        long lru = BeladyOracle.policyHits(trace, capacity, new LruPolicy(), TestBlocks::key);
        long distinct = trace.stream().distinct().count();
        assertThat(lru).isLessThanOrEqualTo(optimum);
        assertThat(optimum).isLessThanOrEqualTo(trace.size() - distinct);
        if (capacity >= distinct) {
            assertThat(optimum).isEqualTo(trace.size() - distinct);
            assertThat(lru).isEqualTo(optimum);
        }
    }

    @Test
    void beladyPrefixHits_handChecked() {
        // Capacity 2, accesses 1 2 | 1 3 | 1 2: 3 is never needed again, so it is not stored and 1 2 survive.
        List<List<Integer>> requests = List.of(List.of(1, 2), List.of(1, 3), List.of(1, 2));
        assertThat(BeladyOracle.prefixHits(requests, 2)).containsExactly(0, 1, 2);
        // Capacity 1: at the first 2, block 1 (needed at access 2) is kept and 2 (needed at 5) not stored.
        assertThat(BeladyOracle.prefixHits(requests, 1)).containsExactly(0, 1, 1);
        // Only a prefix counts: 9 is cached but 8 before it is not.
        assertThat(BeladyOracle.prefixHits(List.of(List.of(8, 9), List.of(7, 9)), 2)).containsExactly(0, 0);
    }

    @Property(tries = 40)
    void beladyPrefixHits_withRoomForEverything_isTheUnlimitedPrefixHitCount(
            @ForAll @IntRange(min = 1, max = 8) int spread, @ForAll long seed) {
        Random r = new Random(seed);
        List<List<Integer>> requests = new ArrayList<>();
        for (int i = 0; i < 60; i++) {
            List<Integer> c = new ArrayList<>();
            int len = 1 + r.nextInt(5);
            int branch = r.nextInt(spread);
            for (int j = 0; j < len; j++) {
                c.add(j == 0 ? 0 : branch * 100 + j);
            }
            requests.add(c);
        }
        java.util.Set<Integer> seen = new java.util.HashSet<>();
        long unlimited = 0;
        for (List<Integer> c : requests) {
            int k = 0;
            while (k < c.size() && seen.contains(c.get(k))) {
                k++;
            }
            unlimited += k;
            seen.addAll(c);
        }
        long[] hits = BeladyOracle.prefixHits(requests, 10_000);
        assertThat(java.util.Arrays.stream(hits).sum()).isEqualTo(unlimited);
        long[] small = BeladyOracle.prefixHits(requests, 3);
        for (int i = 0; i < requests.size(); i++) {
            assertThat(small[i]).isBetween(0L, (long) requests.get(i).size()).isLessThanOrEqualTo(hits[i]);
        }
    }

    @Test
    void admitAll_admits() {
        assertThat(AdmissionPolicy.ADMIT_ALL.admit(BlockKey.of(new byte[32]), AccessHint.NONE)).isTrue();
    }
}
