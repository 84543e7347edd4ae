package io.moemesh.kvcache.tier;

import java.util.List;

/**
 * The longest leading run of a chain's keys that is stored, and the tier of each ({@code kvcache.v1}'s
 * LookupResponse).
 *
 * @param tiers the tier of blocks 0 .. presentBlocks−1, in chain order
 */
public record LookupResult(List<TierKind> tiers) {
    public LookupResult {
        tiers = List.copyOf(tiers);
    }

    /** How many leading blocks are stored. */
    public int presentBlocks() {
        return tiers.size();
    }
}
