package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.policy.BlockHistory;
import io.moemesh.kvcache.policy.EvictionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import java.util.Optional;
import java.util.function.Predicate;

/** LRU whose insert or remove throws once told to (a broken policy: the tier's step fails part-way). */
final class ThrowingPolicy implements EvictionPolicy {
    private final LruPolicy lru = new LruPolicy();
    volatile boolean insertThrows;
    volatile boolean removeThrows;

    @Override
    public void onInsert(BlockHistory history) {
        if (insertThrows) {
            throw new IllegalStateException("injected: onInsert failed");
        }
        lru.onInsert(history);
    }

    @Override
    public void onAccess(BlockHistory history) {
        lru.onAccess(history);
    }

    @Override
    public void onRemove(BlockKey key) {
        if (removeThrows) {
            throw new IllegalStateException("injected: onRemove failed");
        }
        lru.onRemove(key);
    }

    @Override
    public Optional<BlockKey> victim(Predicate<BlockKey> evictable) {
        return lru.victim(evictable);
    }
}
