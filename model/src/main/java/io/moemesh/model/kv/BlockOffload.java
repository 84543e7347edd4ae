package io.moemesh.model.kv;

import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Where {@link PrefixCachingKvCache} sends a long sequence's oldest full blocks while it runs, so the pool keeps
 * only its recent ones and the engine attends over the rest remotely ({@link
 * io.moemesh.model.engine.KvCache#remotePrefix}, {@link io.moemesh.model.engine.RemoteAttention}): the gateway's
 * Attend over the kvcache-service (issue 11, item 3: "long contexts keep recent blocks in the gateway and use
 * {@code Attend} for the rest"). The cache calls every method on the engine thread: none may block.
 */
public interface BlockOffload {
    /** Keeps everything local. */
    BlockOffload NONE = new BlockOffload() {
        @Override
        public int remoteBlocks(int length) {
            return 0;
        }

        @Override
        public CompletableFuture<Boolean> offload(long seqId, List<BlockContents> blocks) {
            return CompletableFuture.completedFuture(false);
        }

        @Override
        public void released(long seqId) {
        }
    };

    /**
     * The policy: how many leading full blocks of a sequence whose first {@code length} positions are final should
     * live remotely (0 = all local). The cache offloads fewer when a block has no hash (see {@link
     * PrefixCachingKvCache#setBlockOffload}).
     */
    int remoteBlocks(int length);

    /**
     * Starts storing and pinning {@code blocks} (consecutive, block 0 or continuing the blocks already offloaded
     * for this sequence) for sequence {@code seqId}, and returns at once. The future completes with true once every
     * one of them is stored and pinned for the sequence, so attention over them can be asked for until {@link
     * #released}: only then does the cache let go of its copies. False (or an exceptional completion) when not: the
     * sequence stays local, and nothing this call pinned stays pinned.
     *
     * <p>The future must complete within a bounded time, with success or failure (the gateway's {@code
     * AttendOffload} fails it after its offload-timeout), and the caller's engine loop should be woken when it does:
     * while it is pending, a sequence of {@code seqId} short of room waits for it ({@link
     * io.moemesh.model.engine.KvCache#offloadPending}) instead of being preempted or ended, and no request is admitted
     * in a step where one waits. The cache and the scheduler do not time it out themselves: they have no clock (a
     * step is not a unit of time) and the implementation knows its calls' deadlines. A future that never completes
     * holds its sequence, and with it the blocks it holds, until the sequence is cancelled.
     */
    CompletableFuture<Boolean> offload(long seqId, List<BlockContents> blocks);

    /**
     * The sequence left the cache (finished, cancelled, failed, preempted): every pin taken for it is released,
     * those of an offload still in flight too, once it lands.
     */
    void released(long seqId);
}
