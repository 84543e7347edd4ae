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

    /**
     * Block-level Belady MIN on a prefix-cache trace: each request first hits the longest leading run of its chain
     * that is cached, then every block of the chain is accessed in order; on a miss the block is stored, evicting
     * the cached block whose next access is farthest ahead, unless the new block itself is needed no sooner than
     * that one (or never again), in which case it is not stored. The reference for prefix-hit policies, though not
     * their true optimum (a prefix hit needs whole runs, which MIN does not plan for).
     *
     * @return prefix-hit blocks per request, in trace order
     */
    public static <K> long[] prefixHits(List<? extends List<K>> requests, int capacity) {
        if (capacity <= 0) {
            throw new IllegalArgumentException("capacity must be positive, got " + capacity);
        }
        int n = 0;
        for (List<K> r : requests) {
            n += r.size();
        }
        Map<K, Integer> idOf = new HashMap<>();
        int[] flat = new int[n];
        int at = 0;
        for (List<K> r : requests) {
            for (K k : r) {
                flat[at++] = idOf.computeIfAbsent(k, x -> idOf.size());
            }
        }
        int[] next = new int[n];
        int[] seen = new int[idOf.size()];
        java.util.Arrays.fill(seen, Integer.MAX_VALUE);
        for (int i = n - 1; i >= 0; i--) {
            next[i] = seen[flat[i]];
            seen[flat[i]] = i;
        }
        // nextUse[id] of a cached block, −1 when not cached; the queue holds (nextUse, id), stale entries skipped.
        int[] nextUse = new int[idOf.size()];
        java.util.Arrays.fill(nextUse, -1);
        PriorityQueue<long[]> farthest = new PriorityQueue<>((a, b) -> Long.compare(b[0], a[0]));
        int cached = 0;
        long[] hits = new long[requests.size()];
        int i = 0;
        for (int r = 0; r < requests.size(); r++) {
            int len = requests.get(r).size();
            int h = 0;
            while (h < len && nextUse[flat[i + h]] >= 0) {
                h++;
            }
            hits[r] = h;
            for (int j = 0; j < len; j++, i++) {
                int id = flat[i];
                int nu = next[i];
                if (nextUse[id] >= 0) {
                    nextUse[id] = nu;
                    farthest.add(new long[] {nu, id});
                    continue;
                }
                if (nu == Integer.MAX_VALUE) {
                    continue;
                }
                if (cached == capacity) {
                    long[] top;
                    while (true) {
                        top = farthest.peek();
                        if (nextUse[(int) top[1]] == top[0]) {
                            break;
                        }
                        farthest.poll();
                    }
                    if (top[0] <= nu) {
                        continue;
                    }
                    farthest.poll();
                    nextUse[(int) top[1]] = -1;
                    cached--;
                }
                nextUse[id] = nu;
                farthest.add(new long[] {nu, id});
                cached++;
            }
        }
        return hits;
    }
}
