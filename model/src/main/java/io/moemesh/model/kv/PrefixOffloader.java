package io.moemesh.model.kv;

import java.util.ArrayList;
import java.util.List;

/**
 * Moves running sequences' oldest full blocks to a {@link BlockOffload} and, once it holds them, out of their block
 * tables: the blocks then make up the sequence's remote prefix ({@link PrefixCachingKvCache#remotePrefix}). The
 * rules are those of {@link PrefixCachingKvCache#setBlockOffload}; this class keeps each sequence's offload state
 * in its {@link CachedSequence} and the count of remote blocks. Engine thread only; {@link #remoteBlocks} may be
 * read from any thread (metrics).
 */
final class PrefixOffloader {
    private final PrefixBlockPool blocks;
    private BlockOffload offload = BlockOffload.NONE;
    private volatile int remoteCount;

    PrefixOffloader(PrefixBlockPool blocks) {
        this.blocks = blocks;
    }

    /**
     * Whether a sequence that fills a pool of {@code poolBlocks} blocks (nothing remote yet) would have blocks
     * moved out: the policy wants some of them remote at that length. Without it no sequence ever gets past the
     * pool, whatever the offload: {@link BlockOffload#remoteBlocks} is only asked about lengths a sequence reached.
     */
    boolean offloadsWithin(int poolBlocks) {
        return offloadsWithin(offload, poolBlocks, blocks.pool().blockTokens());
    }

    /** {@link #offloadsWithin(int)} for {@code offload}, set or not. */
    static boolean offloadsWithin(BlockOffload offload, int poolBlocks, int blockTokens) {
        int positions = (int) Math.min(Integer.MAX_VALUE, (long) poolBlocks * blockTokens);
        return offload != BlockOffload.NONE && offload.remoteBlocks(positions) > 0;
    }

    /**
     * Whether an offload of the sequence is in flight (or done and not yet applied), or waits for the offload's room
     * for copies ({@link BlockOffload#copyRoom}): either way the pool has more room for it soon.
     */
    boolean pending(CachedSequence s) {
        return s.offloading != null || s.awaitingRoom;
    }

    void set(BlockOffload offload) {
        this.offload = offload == null ? BlockOffload.NONE : offload;
    }

    /**
     * After a completed step of the sequence ({@code s.length} positions final and hashed): when the policy wants
     * more of its blocks remote than are and none is in flight, starts an offload of the next ones ({@link #start}).
     * A sequence whose offload failed is never offered again.
     */
    void stepCompleted(long seqId, CachedSequence s) {
        start(seqId, s);
    }

    /**
     * Starts an offload of the sequence's next blocks, when none is in flight and the policy wants more remote: only
     * full blocks with a hash, block {@code s.remote} first, stopping at one without (a sequence whose steps stopped
     * being hashed, {@link CachedSequence#hashable}) or one that is another chain's (its chain position differs); a
     * duplicate of another sequence's block has its hash ({@link PrefixBlockPool#register}). A block the offload
     * holds already goes by its hash alone ({@link BlockOffload#needsCopy}), so a long history that is still cached
     * here and stored there costs no copies; the others are copied, no more than {@link BlockOffload#copyRoom}: the
     * run stops before the first copy past it (those blocks stay local for now). A run that could not start for
     * want of room leaves the sequence waiting for it ({@link CachedSequence#awaitingRoom}) while the offload says
     * it waits ({@link BlockOffload#awaitRoom}): {@link #apply} tries again at every step boundary. After an AGAIN
     * every block is copied ({@link CachedSequence#copyAll}).
     */
    private void start(long seqId, CachedSequence s) {
        s.awaitingRoom = false;
        if (offload == BlockOffload.NONE || s.offloading != null || s.offloadFailed) {
            return;
        }
        int target = Math.min(offload.remoteBlocks(s.length), s.length / blocks.pool().blockTokens());
        int room = offload.copyRoom();
        List<BlockHash> hashes = new ArrayList<>();
        List<BlockContents> copies = new ArrayList<>();
        for (int i = s.remote; i < target; i++) {
            int b = s.table.get(i - s.remote);
            BlockHash h = blocks.hashOf(b);
            if (h == null || blocks.position(b) != i) {
                break;
            }
            if (s.copyAll || offload.needsCopy(h)) {
                if (copies.size() >= room) {
                    if (hashes.isEmpty()) {
                        // The offload may keep state for the wait (the gateway's does): it hears of the release.
                        s.offloaded = true;
                        s.awaitingRoom = offload.awaitRoom(seqId);
                    }
                    break;
                }
                copies.add(blocks.copy(b));
            }
            hashes.add(h);
        }
        if (hashes.isEmpty()) {
            return;
        }
        s.offloaded = true;
        s.offloadTo = s.remote + hashes.size();
        s.offloading = offload.offload(seqId, hashes, copies);
    }

    /**
     * At a step boundary (the engine reads the table after this): lets go of the blocks of a completed offload as a
     * release does (a block other sequences share stays held by them; one nobody holds becomes cached, still
     * findable by its hash) and counts them as remote. A failed one (FAILED, exceptional or cancelled) leaves the
     * sequence local for the rest of its life: no retry against a service that is down. One that says {@link
     * BlockOffload.Outcome#AGAIN} starts again here, copying every block; a second AGAIN in a row is a failure (by
     * hash alone a retry could find its blocks evicted again, round after round, the sequence pending throughout). A
     * sequence waiting for the offload's room starts here once there is room, or stops waiting when the offload says
     * so (the scheduler reserves for a sequence at each step boundary, waiting or not).
     */
    void apply(long seqId, CachedSequence s) {
        if (s.offloading == null) {
            if (s.awaitingRoom && offload.copyRoom() > 0) {
                start(seqId, s);
            } else if (s.awaitingRoom) {
                s.awaitingRoom = offload.awaitRoom(seqId);
            }
            return;
        }
        if (!s.offloading.isDone()) {
            return;
        }
        BlockOffload.Outcome outcome = s.offloading.isCompletedExceptionally() || s.offloading.isCancelled()
                ? BlockOffload.Outcome.FAILED : s.offloading.getNow(BlockOffload.Outcome.FAILED);
        s.offloading = null;
        if (outcome == BlockOffload.Outcome.AGAIN && !s.copyAll) {
            s.copyAll = true;
            start(seqId, s);
            return;
        }
        if (outcome != BlockOffload.Outcome.PINNED) {
            s.offloadFailed = true;
            return;
        }
        s.copyAll = false;
        int n = s.offloadTo - s.remote;
        // Tail first into the LRU, as a release does: eviction takes the chain's end before its start.
        for (int i = n - 1; i >= 0; i--) {
            blocks.letGo(s.table.get(i));
        }
        s.table.removeFirst(n);
        s.remote = s.offloadTo;
        remoteCount += n;
    }

    /**
     * The sequence left the cache: its remote blocks are no longer counted, and the offload unpins them and forgets
     * its wait for room (told of every sequence it heard of, an offload started or not).
     */
    void released(long seqId, CachedSequence s) {
        if (s.offloaded) {
            remoteCount -= s.remote;
            offload.released(seqId);
        }
    }

    /** Blocks of the sequences here that the offload holds instead (their remote prefixes, in blocks). */
    int remoteBlocks() {
        return remoteCount;
    }
}
