package io.moemesh.kvcache.policy;

import io.moemesh.kvcache.block.BlockKey;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A keys-only simulation of one bonus strength of {@link ConversationPolicy} on the same request stream, at the
 * same total capacity (no tiers: with one priority order for both tiers, DRAM's victim is the lowest of DRAM and
 * the SSD then drops the lowest of everything, so the two tiers together evict exactly what one cache would). Its
 * prefix hits tell the policy which strength is working on the recent traffic (ARC's ghost lists, generalised to a
 * few candidate policies).
 */
final class ShadowCache {
    private final int capacity;
    final double strength;
    private final Map<BlockKey, PrefixPriority> resident = new HashMap<>();
    private final TreeMap<PrefixPriority, BlockKey> order = new TreeMap<>();
    private long seq;
    /** Exponentially decayed prefix-hit blocks (see {@link ConversationPolicy#SCORE_DECAY}). */
    double score;

    ShadowCache(int capacity, double strength) {
        this.capacity = capacity;
        this.strength = strength;
    }

    /**
     * Looks the chain up (longest cached prefix), then touches or stores every block with the key the policy gives
     * it at this strength ({@code firstTick + strength · capacity · (logRatio + logUses[j])}); {@code skipLast}: the
     * chain's last block is not stored when new.
     *
     * @return the prefix hits
     */
    int replay(List<BlockKey> chain, long firstTick, double logRatio, double[] logUses, boolean skipLast) {
        int hits = 0;
        while (hits < chain.size() && resident.containsKey(chain.get(hits))) {
            hits++;
        }
        for (int j = 0; j < chain.size(); j++) {
            BlockKey k = chain.get(j);
            double p = firstTick + strength * capacity * (logRatio + logUses[j]);
            PrefixPriority old = resident.get(k);
            if (old != null) {
                order.remove(old);
                PrefixPriority now = new PrefixPriority(Math.max(p, old.priority()), j, old.seq());
                resident.put(k, now);
                order.put(now, k);
                continue;
            }
            if (skipLast && j == chain.size() - 1 && j > 0) {
                continue;
            }
            if (resident.size() >= capacity) {
                resident.remove(order.pollFirstEntry().getValue());
            }
            PrefixPriority now = new PrefixPriority(p, j, seq++);
            resident.put(k, now);
            order.put(now, k);
        }
        return hits;
    }
}
