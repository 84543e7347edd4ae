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
     * The most positions one sequence can ever reach here, running alone: every block of the pool, unless long
     * sequences' oldest blocks move to another tier ({@link #remotePrefix}) once they fill the pool, which lifts
     * the bound ({@link Integer#MAX_VALUE}). The scheduler ends a sequence there as it does at the model's context,
     * so a sequence larger than the cache is not preempted and recomputed without end. A sequence whose blocks
     * could not move after all (the tier failed) is ended by the scheduler when it holds the whole pool past its
     * remote prefix and no offload of it is {@linkplain #offloadPending pending}.
     */
    int maxSequencePositions();

    /**
     * Whether some of the sequence's blocks are on their way to another tier (or about to be: the offload has no room
     * for their copies until others settle, {@code BlockOffload#copyRoom}): once that lands (at a step boundary, in
     * {@link #ensureCapacity}) the sequence holds fewer blocks here, so one that is short of room waits for it rather
     * than be preempted, preempt later arrivals or be ended. The offload settles within a bounded time (see {@code
     * BlockOffload#offload}). False by default (nothing ever moves).
     */
    default boolean offloadPending(long seqId) {
        return false;
    }

    /**
     * The positions the pool holds at once: with a remote prefix, what one sequence can hold here past it, so the
     * most one prefill chunk may reserve in an otherwise empty pool. The same as {@link #maxSequencePositions} unless
     * a remote prefix lifts that bound.
     */
    default int poolPositions() {
        return maxSequencePositions();
    }

    /**
     * Makes room for positions [0, length) of {@code seqId}, allocating blocks as needed (only for positions at or
     * after its {@link #remotePrefix}: those before it are not held here).
     *
     * @return false when the pool has no free block left (the caller preempts or waits); nothing changes then
     */
    boolean ensureCapacity(long seqId, int length);

    /**
     * The sequence's block table: entry i is the physical block holding positions [R + i·B, R + (i+1)·B), where
     * R is its {@link #remotePrefix} (0 unless the cache says otherwise). Valid for the blocks reserved by
     * {@link #ensureCapacity}; read once per step, not per position.
     */
    int[] blockTable(long seqId);

    /**
     * R: how many leading positions of the sequence have their keys and values elsewhere, not in this cache (the
     * kvcache-service keeps them and computes their attention partial: {@link RemoteAttention}); a multiple of
     * {@link #blockTokens()}, at most the start position of the sequence's next step. The block table then starts
     * at position R. Read by the engine once per sequence per step; 0 (the default) = every position is here.
     */
    default int remotePrefix(long seqId) {
        return 0;
    }

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
