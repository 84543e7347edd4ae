package io.moemesh.model.kv;

import io.moemesh.model.engine.BlockTable;
import java.util.concurrent.CompletableFuture;

/**
 * One sequence's state in {@link PrefixCachingKvCache}: its block table, what it has made final and hashed, and
 * its offload (the blocks a {@link BlockOffload} holds instead: its remote prefix, which {@link PrefixOffloader}
 * moves). Engine thread only.
 */
final class CachedSequence {
    /** Its local blocks: entry i holds positions of block {@code remote + i}. */
    final BlockTable table = new BlockTable();
    /** The tenant salting its hashes; null until an admission or a step names it. */
    String tenant;
    /** Positions [0, length) have final keys and values and known tokens, hashed up to the last full block. */
    int length;
    /** The tokens of the block being filled: positions [length - length % B, length). */
    final int[] partial;
    /** The hash of the last full block, null before the first. */
    BlockHash last;
    /** False once a step did not continue where the last ended (its tokens are then not all known). */
    boolean hashable = true;
    /** The last lookup's context and hit tokens, counted when the sequence's first step starts. */
    int pendingLookedUp;
    int pendingServed;
    /** Leading blocks held remotely (the remote prefix, in blocks): {@code table.get(0)} is block {@code remote}. */
    int remote;
    /** An offload in flight ({@link BlockOffload#offload}) that makes blocks [remote, offloadTo) remote. */
    CompletableFuture<BlockOffload.Outcome> offloading;
    int offloadTo;
    /**
     * The policy wants blocks remote but no offload could start: the offload had no room for the first copy ({@link
     * BlockOffload#copyRoom}). The sequence waits for that room as for an offload in flight.
     */
    boolean awaitingRoom;
    /**
     * Its last offload said {@link BlockOffload.Outcome#AGAIN}: its offloads copy every block until one is pinned,
     * and another AGAIN fails it.
     */
    boolean copyAll;
    /**
     * True once the offload heard of the sequence: an offload was started, or it was asked to wait for room (then
     * the offload is told of the release, which ends what it holds for the sequence either way).
     */
    boolean offloaded;
    /** An offload failed: the sequence stays local from then on (no retry against a service that is down). */
    boolean offloadFailed;

    CachedSequence(int blockTokens, String tenant) {
        this.partial = new int[blockTokens];
        this.tenant = tenant;
    }
}
