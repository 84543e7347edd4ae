package io.moemesh.kvcache.policy;

import io.moemesh.kvcache.block.BlockKey;
import java.util.Optional;
import java.util.function.Predicate;

/**
 * Which resident block a bounded tier gives up first. The tier tells the policy every insertion, hit and removal
 * with the block's {@link BlockHistory}, and asks for a victim when it needs room. The tier serialises all calls
 * (a policy need not be thread-safe) and never passes a block that is not resident.
 *
 * <p>Why this shape: LRU needs only the order of events, but the policies that beat it on real traces (Mooncake's
 * prefix-aware eviction, LMCache's, frequency-aware ones) need counts, ages and the chain position, which the
 * history carries; {@link BeladyOracle} measures any policy against the offline optimum on a trace.
 */
public interface EvictionPolicy {
    /** A block entered the tier. */
    void onInsert(BlockHistory history);

    /** A resident block was hit (or put again); {@code history} is already updated. */
    void onAccess(BlockHistory history);

    /** A block left the tier (evicted, removed or moved to another tier). */
    void onRemove(BlockKey key);

    /**
     * The next block to evict, in the policy's order, among the resident blocks that {@code evictable} accepts
     * (pinned blocks are refused by it); empty when none is acceptable. Does not remove it: the tier calls
     * {@link #onRemove} when it does.
     */
    Optional<BlockKey> victim(Predicate<BlockKey> evictable);
}
