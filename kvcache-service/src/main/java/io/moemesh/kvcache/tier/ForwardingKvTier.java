package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.policy.AccessHint;
import java.util.Optional;

/**
 * A tier that hands every call to another one (Guava's Forwarding* pattern): a tier that adds to one it wraps
 * ({@link CsdTier}: attention where the blocks lie) overrides what it adds and inherits the rest, so a method added to
 * {@link KvTier} is forwarded in one place.
 */
public abstract class ForwardingKvTier implements KvTier {
    private final KvTier delegate;

    protected ForwardingKvTier(KvTier delegate) {
        if (delegate == null) {
            throw new IllegalArgumentException("delegate must not be null");
        }
        this.delegate = delegate;
    }

    @Override
    public TierKind kind() {
        return delegate.kind();
    }

    @Override
    public KvLayout layout() {
        return delegate.layout();
    }

    @Override
    public PutResult put(KvBlock block, AccessHint hint) {
        return delegate.put(block, hint);
    }

    @Override
    public void checkStorable(KvBlock block) {
        delegate.checkStorable(block);
    }

    @Override
    public Optional<KvBlock> get(BlockKey key, AccessHint hint) {
        return delegate.get(key, hint);
    }

    @Override
    public Optional<RecordExtent> locate(BlockKey key, AccessHint hint, long leaseUntilNanos) {
        return delegate.locate(key, hint, leaseUntilNanos);
    }

    @Override
    public boolean contains(BlockKey key) {
        return delegate.contains(key);
    }

    @Override
    public boolean remove(BlockKey key) {
        return delegate.remove(key);
    }

    @Override
    public boolean promoteOut(BlockKey key) {
        return delegate.promoteOut(key);
    }

    @Override
    public void letGo(BlockKey key) {
        delegate.letGo(key);
    }

    @Override
    public boolean pin(BlockKey key) {
        return delegate.pin(key);
    }

    @Override
    public boolean unpin(BlockKey key) {
        return delegate.unpin(key);
    }

    @Override
    public boolean isPinned(BlockKey key) {
        return delegate.isPinned(key);
    }

    @Override
    public long capacityBytes() {
        return delegate.capacityBytes();
    }

    @Override
    public long usedBytes() {
        return delegate.usedBytes();
    }

    @Override
    public long blockCount() {
        return delegate.blockCount();
    }

    @Override
    public TierStats stats() {
        return delegate.stats();
    }

    @Override
    public void close() {
        delegate.close();
    }
}
