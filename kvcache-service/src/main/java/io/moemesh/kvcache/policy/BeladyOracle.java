package io.moemesh.kvcache.policy;

import io.moemesh.kvcache.block.BlockKey;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.function.Function;

/**
 * Belady's MIN: the offline optimum a cache of equal-sized blocks can reach on a known trace (evict the block whose
 * next use is farthest in the future). No online policy can hit more often, so it is the yardstick an
 * {@link EvictionPolicy} is measured against ({@link #hits} versus {@link #policyHits} on the same trace).
 * Every access is a get that, on a miss, puts the block (demand caching), as the gateway does with prefix blocks.
 */
public final class BeladyOracle {
    private BeladyOracle() {
    }

    /** Hits of Belady's MIN on {@code trace} (any keys with equals/hashCode) with room for {@code capacity} blocks. */
    public static <K> long hits(List<K> trace, int capacity) {
        if (capacity <= 0) {
            throw new IllegalArgumentException("capacity must be positive, got " + capacity);
        }
        int n = trace.size();
        int[] next = new int[n];
        Map<K, Integer> seen = new HashMap<>();
        for (int i = n - 1; i >= 0; i--) {
            next[i] = seen.getOrDefault(trace.get(i), Integer.MAX_VALUE);
            seen.put(trace.get(i), i);
        }
        // Resident blocks by next use, farthest first; stale queue entries are skipped lazily.
        PriorityQueue<long[]> byNextUse = new PriorityQueue<>((a, b) -> Long.compare(b[0], a[0]));
        Map<K, Integer> nextUseOf = new HashMap<>();
        List<K> keys = new ArrayList<>();
        Map<K, Integer> idOf = new HashMap<>();
        long hits = 0;
        for (int i = 0; i < n; i++) {
            K k = trace.get(i);
            int id = idOf.computeIfAbsent(k, x -> {
                keys.add(x);
                return keys.size() - 1;
            });
            if (nextUseOf.containsKey(k)) {
                hits++;
            } else if (nextUseOf.size() == capacity) {
                while (true) {
                    long[] top = byNextUse.poll();
                    K victim = keys.get((int) top[1]);
                    Integer current = nextUseOf.get(victim);
                    if (current != null && current == top[0]) {
                        nextUseOf.remove(victim);
                        break;
                    }
                }
            }
            nextUseOf.put(k, next[i]);
            byNextUse.add(new long[] {next[i], id});
        }
        return hits;
    }

    /**
     * Hits of an online policy on the same demand-caching trace with room for {@code capacity} blocks (each access
     * one clock tick, no pins), for comparison with {@link #hits}.
     */
    public static <K> long policyHits(List<K> trace, int capacity, EvictionPolicy policy,
                                      Function<K, BlockKey> key) {
        if (capacity <= 0) {
            throw new IllegalArgumentException("capacity must be positive, got " + capacity);
        }
        Map<BlockKey, BlockHistory> resident = new HashMap<>();
        long hits = 0;
        long tick = 0;
        for (K item : trace) {
            BlockKey k = key.apply(item);
            tick++;
            BlockHistory h = resident.get(k);
            if (h != null) {
                hits++;
                h = h.accessed(tick, AccessHint.NONE);
                resident.put(k, h);
                policy.onAccess(h);
                continue;
            }
            if (resident.size() == capacity) {
                BlockKey victim = policy.victim(x -> true).orElseThrow();
                resident.remove(victim);
                policy.onRemove(victim);
            }
            h = BlockHistory.inserted(k, 1, tick, AccessHint.NONE);
            resident.put(k, h);
            policy.onInsert(h);
        }
        return hits;
    }
}
