package io.moemesh.model.engine;

import java.util.HashMap;
import java.util.Map;

/**
 * A fixed pool of KV blocks with a block table per sequence and a free list (vLLM's BlockPool without
 * prefix sharing). The reference engine's cache; sized in blocks, so memory is bounded up front. The pool and the
 * tables are the same classes the prefix cache ({@code model/kv/PrefixCachingKvCache}) builds on: {@link BlockPool},
 * {@link BlockTable}; here every block is held by exactly one table or free.
 */
public final class PagedKvCache implements KvCache {
    public static final int DEFAULT_BLOCK_TOKENS = 16;

    private final BlockPool pool;
    private final Map<Long, BlockTable> tables = new HashMap<>();

    public PagedKvCache(int layers, int kvDim, int blockTokens, int numBlocks) {
        this.pool = new BlockPool(layers, kvDim, blockTokens, numBlocks);
    }

    /** A cache able to hold {@code tokens} positions in total. */
    public static PagedKvCache forTokens(int layers, int kvDim, int tokens) {
        return new PagedKvCache(layers, kvDim, DEFAULT_BLOCK_TOKENS,
                Math.max(1, (tokens + DEFAULT_BLOCK_TOKENS - 1) / DEFAULT_BLOCK_TOKENS));
    }

    @Override
    public int blockTokens() {
        return pool.blockTokens();
    }

    @Override
    public boolean ensureCapacity(long seqId, int length) {
        int need = (length + pool.blockTokens() - 1) / pool.blockTokens();
        BlockTable t = tables.get(seqId);
        int have = t == null ? 0 : t.size();
        if (need <= have) {
            return true;
        }
        if (need - have > pool.freeBlocks()) {
            return false;
        }
        if (t == null) {
            t = new BlockTable();
            tables.put(seqId, t);
        }
        for (int b = have; b < need; b++) {
            t.add(pool.take());
        }
        return true;
    }

    @Override
    public int[] blockTable(long seqId) {
        BlockTable t = tables.get(seqId);
        if (t == null) {
            throw new IllegalStateException("sequence " + seqId + " has no KV blocks");
        }
        return t.entries();
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
        BlockTable t = tables.remove(seqId);
        if (t != null) {
            for (int i = 0; i < t.size(); i++) {
                pool.drop(t.get(i));
                pool.free(t.get(i));
            }
        }
    }

    public int freeBlocks() {
        return pool.freeBlocks();
    }

    @Override
    public int maxSequencePositions() {
        return (int) Math.min(Integer.MAX_VALUE, (long) pool.totalBlocks() * pool.blockTokens());
    }

    public int totalBlocks() {
        return pool.totalBlocks();
    }
}
