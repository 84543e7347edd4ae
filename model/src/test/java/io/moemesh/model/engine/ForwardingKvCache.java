package io.moemesh.model.engine;

/**
 * A {@link KvCache} that keeps its blocks in a {@link PagedKvCache} and lets a test override the step hooks
 * ({@link #stepStarted}, {@link #stepCompleted}) to see what the engine tells a cache.
 */
public class ForwardingKvCache implements KvCache {
    private final PagedKvCache pool;

    public ForwardingKvCache(PagedKvCache pool) {
        this.pool = pool;
    }

    /** The pool the blocks live in (a test checks its free blocks). */
    public PagedKvCache pool() {
        return pool;
    }

    @Override
    public int blockTokens() {
        return pool.blockTokens();
    }

    @Override
    public int maxSequencePositions() {
        return pool.maxSequencePositions();
    }

    @Override
    public boolean ensureCapacity(long seqId, int length) {
        return pool.ensureCapacity(seqId, length);
    }

    @Override
    public int[] blockTable(long seqId) {
        return pool.blockTable(seqId);
    }

    @Override
    public float[] keys(int layer) {
        return pool.keys(layer);
    }

    @Override
    public float[] values(int layer) {
        return pool.values(layer);
    }

    @Override
    public void release(long seqId) {
        pool.release(seqId);
    }
}
