package io.moemesh.model.engine;

import java.util.HashMap;
import java.util.Map;

/**
 * A cache that holds a sequence's positions only from its remote prefix R on (the kvcache-service keeps the
 * rest): blocks in a {@link PagedKvCache} for positions [R, length), its block table starting at R.
 */
class RemotePrefixKvCache extends ForwardingKvCache {
    private final Map<Long, Integer> prefixes = new HashMap<>();

    RemotePrefixKvCache(PagedKvCache pool) {
        super(pool);
    }

    /** From now on positions [0, r) of {@code seqId} are not held here. */
    void setRemotePrefix(long seqId, int r) {
        prefixes.put(seqId, r);
    }

    @Override
    public boolean ensureCapacity(long seqId, int length) {
        return pool().ensureCapacity(seqId, Math.max(0, length - remotePrefix(seqId)));
    }

    @Override
    public int remotePrefix(long seqId) {
        return prefixes.getOrDefault(seqId, 0);
    }

    @Override
    public void release(long seqId) {
        prefixes.remove(seqId);
        super.release(seqId);
    }
}
