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
     * A step is about to run: every row's sequence, position, token and tenant (a cache that keys full blocks by
     * their chained prefix hash learns the tokens here). Called by the engine once every sequence of the step
     * has its capacity, before anything is computed.
     */
    default void stepStarted(StepContext step) {
    }

    /**
     * The step completed: the keys and values of all its rows are written and final, so blocks they filled may
     * now be shared. Not called when the step failed (its sequences end, their blocks are released unshared).
     */
    default void stepCompleted(StepContext step) {
    }

    /** Frees the sequence's blocks. Unknown ids are ignored. */
    void release(long seqId);
}
