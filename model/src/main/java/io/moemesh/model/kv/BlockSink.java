package io.moemesh.model.kv;

/**
 * Where the {@link PrefixCachingKvCache} hands copies of full blocks that may be lost from it soon: when a block's
 * last holder releases it (a finished or preempted sequence: the block becomes cached) and when a cached block is
 * evicted. The gateway's write-back to the kvcache-service. Called on the engine thread: {@link #wants} must be
 * cheap and {@link #accept} must never block (queue, or drop and count).
 */
public interface BlockSink {
    /** Takes nothing. */
    BlockSink NONE = new BlockSink() {
        @Override
        public boolean wants(BlockHash hash) {
            return false;
        }

        @Override
        public void accept(BlockContents block) {
        }
    };

    /**
     * Whether a copy of the block is needed (false when the other tier already has it, or it is queued): the cache
     * copies the block's keys and values only after a yes.
     */
    boolean wants(BlockHash hash);

    /** A copy of the block (its arrays are the sink's). */
    void accept(BlockContents block);
}
