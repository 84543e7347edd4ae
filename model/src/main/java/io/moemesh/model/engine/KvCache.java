package io.moemesh.model.engine;

/**
 * Paged key/value storage the engine attends over (the vLLM PagedAttention layout): for each layer one
 * pool of blocks, each block {@link #blockTokens()} positions × num_kv_heads × head_dim float32 keys (and
 * values), row-major in that order; a sequence's positions map to physical blocks through its block table.
 * The gateway's cache (prefix hashing, offload) implements this same interface.
 */
public interface KvCache {

    /** Positions per block. */
    int blockTokens();

    /**
     * Makes room for positions [0, length) of {@code seqId}, allocating blocks as needed.
     *
     * @return false when the pool has no free block left (the caller preempts or waits); nothing changes then
     */
    boolean ensureCapacity(long seqId, int length);

    /**
     * The sequence's block table: entry i is the physical block holding positions [i·B, (i+1)·B). Valid for
     * the blocks reserved by {@link #ensureCapacity}; read once per step, not per position.
     */
    int[] blockTable(long seqId);

    /** The key pool of a layer: [num_blocks, block_tokens, num_kv_heads, head_dim]. */
    float[] keys(int layer);

    /** The value pool of a layer, same layout as {@link #keys(int)}. */
    float[] values(int layer);

    /**
     * The tokens about to be written at positions [startPos, startPos + tokens.length) of a sequence, told by
     * the scheduler before the step, so a cache can key full blocks by their chained prefix hash.
     */
    default void onTokens(long seqId, int startPos, int[] tokens) {
    }

    /** Frees the sequence's blocks. Unknown ids are ignored. */
    void release(long seqId);
}
