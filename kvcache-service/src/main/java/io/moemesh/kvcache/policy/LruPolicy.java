package io.moemesh.kvcache.policy;

import io.moemesh.kvcache.block.BlockKey;
import java.util.LinkedHashMap;
import java.util.Optional;
import java.util.function.Predicate;

/**
 * Least recently used first (insertions and hits both count as uses). The baseline policy; pinned blocks are
 * skipped in place, so a long run of pinned blocks at the cold end costs a scan (pins are few and short-lived:
 * a running sequence's prefix).
 */
public final class LruPolicy implements EvictionPolicy {
    /** Access order: the eldest entry is the least recently used. */
    private final LinkedHashMap<BlockKey, Boolean> order = new LinkedHashMap<>(16, 0.75f, true);

    @Override
    public void onInsert(BlockHistory history) {
        order.put(history.key(), Boolean.TRUE);
    }

    @Override
    public void onAccess(BlockHistory history) {
        order.get(history.key());
    }

    @Override
    public void onRemove(BlockKey key) {
        order.remove(key);
    }

    @Override
    public Optional<BlockKey> victim(Predicate<BlockKey> evictable) {
        for (BlockKey k : order.keySet()) {
            if (evictable.test(k)) {
                return Optional.of(k);
            }
        }
        return Optional.empty();
    }
}
