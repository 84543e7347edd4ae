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
    /** What became of an offload ({@link #offload}). */
    enum Outcome {
        /** Every block is stored and pinned for the sequence: the cache lets go of its own. */
        PINNED,
        /**
         * Nothing is pinned for it, and nothing failed for good: a block it took no copy of ({@link #needsCopy} said
         * none was needed) turned out to be gone from the tier. The cache offers the blocks again at once, this time
         * with a copy of every one (by hash, a block the tier acknowledged again could be gone again by the next
         * Pin, round after round); an offload with every copy that says AGAIN all the same counts as {@link #FAILED}.
         */
        AGAIN,
        /** Not stored or not pinned: the sequence stays local for the rest of its life (no retry). */
        FAILED
    }

    /** Keeps everything local. */
    BlockOffload NONE = new BlockOffload() {
        @Override
        public int remoteBlocks(int length) {
            return 0;
        }

        @Override
        public CompletableFuture<Outcome> offload(long seqId, List<BlockHash> hashes, List<BlockContents> copies) {
            return CompletableFuture.completedFuture(Outcome.FAILED);
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
     * Whether the offload needs a copy of the block's keys and values: false when its tier holds the block already
     * (or it is on its way there), so the cache hands over the hash alone. A copy is a block of heap made on the
     * engine thread: a follow-up turn whose history is still cached here, or many sequences sharing one long system
     * prompt, would otherwise copy blocks the tier has, each time. Every block by default.
     */
    default boolean needsCopy(BlockHash hash) {
        return true;
    }

    /**
     * How many more block copies the offload takes now: its budget for copies in flight less those its offloads
     * hold. The cache copies no more; the blocks past them stay local for now, and a sequence that cannot start an
     * offload at all for want of it waits as for one in flight ({@link io.moemesh.model.engine.KvCache#offloadPending})
     * and starts it once there is room, for as long as {@link #awaitRoom} says it waits. Copies are held until their
     * offload settles, so room comes back within the bounded time of {@link #offload}. Unbounded by default.
     */
    default int copyRoom() {
        return Integer.MAX_VALUE;
    }

    /**
     * Whether a sequence whose offload could not start for want of {@link #copyRoom} waits for that room: while it
     * does it counts as {@linkplain io.moemesh.model.engine.KvCache#offloadPending pending} (short of room, it waits
     * instead of preempting, and nothing is admitted in a step where one waits). When not, it keeps its blocks local
     * and runs on as if none were to move (short of room it preempts or ends as without an offload; not a failure:
     * its next completed step offers the blocks again). Asked when the room is found wanting and at every step
     * boundary while the sequence waits; the implementation bounds the wait (the cache and the scheduler have no
     * clock): the gateway's {@code AttendOffload} waits while its offloads hold the room (each at most its
     * offload-timeout), and not at all once several offloads in a row failed (the service looks down). The cache
     * tells the offload of the sequence's release once it asked this, whether an offload of it started or not.
     * Waits by default.
     */
    default boolean awaitRoom(long seqId) {
        return true;
    }

    /**
     * Starts storing and pinning the blocks {@code hashes} (consecutive, block 0 or continuing the blocks already
     * offloaded for this sequence) for sequence {@code seqId}, and returns at once; {@code copies} are copies of
     * those {@link #needsCopy} asked for (at most {@link #copyRoom}), in the same order. The future completes with
     * {@link Outcome#PINNED} once every block is stored and pinned for the sequence, so attention over them can be asked
     * for until {@link #released}: only then does the cache let go of its own. {@link Outcome#FAILED} (or an
     * exceptional completion) when not: the sequence stays local, and nothing this call pinned stays pinned; {@link
     * Outcome#AGAIN} when a block it took no copy of was gone (nothing pinned either).
     *
     * <p>The future must complete within a bounded time, with success or failure (the gateway's {@code
     * AttendOffload} fails it after its offload-timeout), and the caller's engine loop should be woken when it does:
     * while it is pending, a sequence of {@code seqId} short of room waits for it ({@link
     * io.moemesh.model.engine.KvCache#offloadPending}) instead of being preempted or ended, and no request is admitted
     * in a step where one waits. The cache and the scheduler do not time it out themselves: they have no clock (a
     * step is not a unit of time) and the implementation knows its calls' deadlines. A future that never completes
     * holds its sequence, and with it the blocks it holds, until the sequence is cancelled. The loop should be woken
     * too when copies stop being held ({@link #copyRoom} grew): a sequence may be waiting for that room.
     */
    CompletableFuture<Outcome> offload(long seqId, List<BlockHash> hashes, List<BlockContents> copies);

    /** {@link #offload(long, List, List)} with a copy of every block. */
    default CompletableFuture<Outcome> offload(long seqId, List<BlockContents> blocks) {
        return offload(seqId, blocks.stream().map(BlockContents::hash).toList(), blocks);
    }

    /**
     * The sequence left the cache (finished, cancelled, failed, preempted): every pin taken for it is released,
     * those of an offload still in flight too, once it lands.
     */
    void released(long seqId);
}
