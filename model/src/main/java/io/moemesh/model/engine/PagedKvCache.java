package io.moemesh.model.engine;

import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * A fixed pool of KV blocks with a block table per sequence and a free list (vLLM's BlockPool without
 * prefix sharing). The reference engine's cache; sized in blocks, so memory is bounded up front.
 */
public final class PagedKvCache implements KvCache {
    public static final int DEFAULT_BLOCK_TOKENS = 16;

    private final int blockTokens;
    private final int numBlocks;
    private final float[][] keys;
    private final float[][] values;
    private final ArrayDeque<Integer> free = new ArrayDeque<>();
    private final Map<Long, Table> tables = new HashMap<>();

    private static final class Table {
        int[] blocks = new int[4];
        int size;
    }

    public PagedKvCache(int layers, int kvDim, int blockTokens, int numBlocks) {
        if (layers <= 0 || kvDim <= 0 || blockTokens <= 0 || numBlocks <= 0) {
            throw new IllegalArgumentException("KV cache needs positive layers, kv dim, block size and block count");
        }
        long floats = (long) numBlocks * blockTokens * kvDim;
        if (floats > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("a KV cache of " + numBlocks + " blocks exceeds one array per layer");
        }
        this.blockTokens = blockTokens;
        this.numBlocks = numBlocks;
        this.keys = new float[layers][(int) floats];
        this.values = new float[layers][(int) floats];
        for (int b = 0; b < numBlocks; b++) {
            free.add(b);
        }
    }

    /** A cache able to hold {@code tokens} positions in total. */
    public static PagedKvCache forTokens(int layers, int kvDim, int tokens) {
        return new PagedKvCache(layers, kvDim, DEFAULT_BLOCK_TOKENS,
                Math.max(1, (tokens + DEFAULT_BLOCK_TOKENS - 1) / DEFAULT_BLOCK_TOKENS));
    }

    @Override
    public int blockTokens() {
        return blockTokens;
    }

    @Override
    public boolean ensureCapacity(long seqId, int length) {
        int need = (length + blockTokens - 1) / blockTokens;
        Table t = tables.get(seqId);
        int have = t == null ? 0 : t.size;
        if (need <= have) {
            return true;
        }
        if (need - have > free.size()) {
            return false;
        }
        if (t == null) {
            t = new Table();
            tables.put(seqId, t);
        }
        if (t.blocks.length < need) {
            t.blocks = Arrays.copyOf(t.blocks, Math.max(need, t.blocks.length * 2));
        }
        for (int b = have; b < need; b++) {
            t.blocks[b] = free.poll();
        }
        t.size = need;
        return true;
    }

    @Override
    public int[] blockTable(long seqId) {
        Table t = tables.get(seqId);
        if (t == null) {
            throw new IllegalStateException("sequence " + seqId + " has no KV blocks");
        }
        return t.blocks;
    }

    @Override
    public float[] keys(int layer) {
        return keys[layer];
    }

    @Override
    public float[] values(int layer) {
        return values[layer];
    }

    @Override
    public void release(long seqId) {
        Table t = tables.remove(seqId);
        if (t != null) {
            for (int b = 0; b < t.size; b++) {
                free.add(t.blocks[b]);
            }
        }
    }

    public int freeBlocks() {
        return free.size();
    }

    public int totalBlocks() {
        return numBlocks;
    }
}
