package io.moemesh.model.engine;

import java.util.Arrays;

/**
 * The physical KV blocks both caches page into (vLLM's BlockPool without its prefix hashing): each layer's key
 * and value array in the {@link KvCache} layout, how many block tables hold each block, and the free list.
 * {@link PagedKvCache} takes and frees blocks here directly; the prefix cache ({@code model/kv}) keeps blocks its
 * last holder let go of outside the free list while their hash is findable, so this class never decides that:
 * {@link #drop} only says that nobody holds the block any more, and the caller {@link #free frees} it or keeps it.
 * Engine thread only; {@link #freeBlocks} may be read from any thread (metrics).
 */
public final class BlockPool {
    private final int blockTokens;
    private final int numBlocks;
    private final int kvDim;
    private final float[][] keys;
    private final float[][] values;
    /** Per block: how many block tables hold it. */
    private final int[] holders;
    /** Per block: whether it is on the free list (so a double free or a hold of a free block is caught). */
    private final boolean[] isFree;
    /** Free blocks: a stack, {@code free[0, freeCount)}; an int stack so taking a block allocates nothing. */
    private final int[] free;
    private volatile int freeCount;

    public BlockPool(int layers, int kvDim, int blockTokens, int numBlocks) {
        if (layers <= 0 || kvDim <= 0 || blockTokens <= 0 || numBlocks <= 0) {
            throw new IllegalArgumentException("KV cache needs positive layers, kv dim, block size and block count");
        }
        long floats = (long) numBlocks * blockTokens * kvDim;
        if (floats > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("a KV cache of " + numBlocks + " blocks exceeds one array per layer");
        }
        this.blockTokens = blockTokens;
        this.numBlocks = numBlocks;
        this.kvDim = kvDim;
        this.keys = new float[layers][(int) floats];
        this.values = new float[layers][(int) floats];
        this.holders = new int[numBlocks];
        this.isFree = new boolean[numBlocks];
        this.free = new int[numBlocks];
        // Block 0 on top: the first sequence gets blocks 0, 1, 2 ... (easier to read in a debugger).
        for (int b = 0; b < numBlocks; b++) {
            free[b] = numBlocks - 1 - b;
            isFree[b] = true;
        }
        this.freeCount = numBlocks;
    }

    /** Positions per block. */
    public int blockTokens() {
        return blockTokens;
    }

    public int layers() {
        return keys.length;
    }

    /** Floats per position: num_kv_heads × head_dim. */
    public int kvDim() {
        return kvDim;
    }

    /** Floats one block takes in one layer's key (or value) array. */
    public int blockFloats() {
        return blockTokens * kvDim;
    }

    public int totalBlocks() {
        return numBlocks;
    }

    /** Blocks on the free list. */
    public int freeBlocks() {
        return freeCount;
    }

    /** The key array of a layer: [num_blocks, block_tokens, kv_dim]. */
    public float[] keys(int layer) {
        return keys[layer];
    }

    /** The value array of a layer, same layout as {@link #keys(int)}. */
    public float[] values(int layer) {
        return values[layer];
    }

    /**
     * Takes a block off the free list for one holder. The most recently freed first (a stack): which block does
     * not matter to the engine, which reads every position through its block table.
     *
     * @throws IllegalStateException when the free list is empty (callers check {@link #freeBlocks} first)
     */
    public int take() {
        if (freeCount == 0) {
            throw new IllegalStateException("no free KV block left");
        }
        int b = free[--freeCount];
        isFree[b] = false;
        holders[b] = 1;
        return b;
    }

    /** One more block table holds {@code block}; one nobody held must be off the free list (the caller kept it). */
    public void hold(int block) {
        if (isFree[block]) {
            throw new IllegalStateException("block " + block + " is free: take it instead");
        }
        holders[block]++;
    }

    /**
     * One block table less holds {@code block}.
     *
     * @return true when nobody holds it now: the caller {@linkplain #free frees} it or keeps it for later
     */
    public boolean drop(int block) {
        if (holders[block] <= 0) {
            throw new IllegalStateException("block " + block + " is held by no block table");
        }
        return --holders[block] == 0;
    }

    /** Puts a block nobody holds back on the free list. */
    public void free(int block) {
        if (holders[block] != 0 || isFree[block]) {
            throw new IllegalStateException("block " + block + " cannot be freed: " + (isFree[block] ? "already free"
                    : "held by " + holders[block] + " block tables"));
        }
        isFree[block] = true;
        free[freeCount++] = block;
    }

    /** How many block tables hold {@code block}. */
    public int holders(int block) {
        return holders[block];
    }

    public boolean isFree(int block) {
        return isFree[block];
    }

    /** Copies of the block's keys, one array of {@link #blockFloats} per layer (token-major, the pool's layout). */
    public float[][] copyKeys(int block) {
        return copy(keys, block);
    }

    /** Copies of the block's values, as {@link #copyKeys}. */
    public float[][] copyValues(int block) {
        return copy(values, block);
    }

    private float[][] copy(float[][] pool, int block) {
        float[][] out = new float[pool.length][];
        int from = block * blockFloats();
        for (int l = 0; l < pool.length; l++) {
            out[l] = Arrays.copyOfRange(pool[l], from, from + blockFloats());
        }
        return out;
    }

    /** Overwrites the block's keys and values with per-layer arrays of {@link #blockFloats} (an imported block). */
    public void write(int block, float[][] blockKeys, float[][] blockValues) {
        if (blockKeys.length != keys.length || blockValues.length != values.length) {
            throw new IllegalArgumentException(blockKeys.length + " layers of keys and " + blockValues.length
                    + " of values for a pool of " + keys.length + " layers");
        }
        int at = block * blockFloats();
        for (int l = 0; l < keys.length; l++) {
            if (blockKeys[l].length != blockFloats() || blockValues[l].length != blockFloats()) {
                throw new IllegalArgumentException("layer " + l + ": " + blockKeys[l].length + " key and "
                        + blockValues[l].length + " value floats, a block holds " + blockFloats());
            }
            System.arraycopy(blockKeys[l], 0, keys[l], at, blockFloats());
            System.arraycopy(blockValues[l], 0, values[l], at, blockFloats());
        }
    }

    /**
     * Checks the free list against the per-block flags and the holder counts against {@code tables}, the number of
     * block tables holding each block counted by the caller (tests): every block on the free list once, flagged
     * free, held by nobody. Returns the number of held blocks.
     */
    public int audit(int[] tables) {
        boolean[] listed = new boolean[numBlocks];
        for (int i = 0; i < freeCount; i++) {
            int b = free[i];
            if (listed[b]) {
                throw new IllegalStateException("block " + b + " is on the free list twice");
            }
            listed[b] = true;
        }
        int held = 0;
        for (int b = 0; b < numBlocks; b++) {
            if (listed[b] != isFree[b]) {
                throw new IllegalStateException("block " + b + ": on the free list " + listed[b] + ", flagged "
                        + isFree[b]);
            }
            if (tables[b] != holders[b]) {
                throw new IllegalStateException("block " + b + ": " + tables[b] + " tables hold it, count says "
                        + holders[b]);
            }
            if (isFree[b] && holders[b] > 0) {
                throw new IllegalStateException("block " + b + " is free and held by " + holders[b]);
            }
            held += holders[b] > 0 ? 1 : 0;
        }
        return held;
    }
}
