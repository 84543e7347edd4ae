package io.moemesh.gateway.kvcache;

import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockHash;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.LongSupplier;

/**
 * {@link RemotePrefixes}' swapped-out sequences: the writes each swap-out queued, and the wait of one that resumes
 * while the pool lacks the room for its whole context (a restore into a full pool would be evicted again before the
 * admission). That wait keeps the sequence's place in the queue ({@link RemotePrefixes#holdsPlace}), which stops
 * every later request, so it is held only while it can pay and not for long:
 * <ul>
 *   <li>only for a swap-out that queued blocks or whose blocks the write-back knows as stored or queued ({@link
 *       StoredBlocks#known}): one that copied nothing (the priority budget was taken, say by offload copies) and
 *       finds nothing there has nothing to restore, and resumes at once, recomputing, as a recompute would; nor once
 *       its writes failed and none of its blocks is known there any more;</li>
 *   <li>for at most {@code roomWait} (the fetch timeout) from when it first found no room: the running sequences it
 *       waits for may run for minutes (their max_tokens), so past that it resumes as it can, recomputing what the
 *       pool lost.</li>
 * </ul>
 * Engine thread only.
 */
final class SwapOuts {
    /** A swap-out: its writes (settled when each is stored or not) and its blocks' hashes, block 0 first. */
    private record SwapOut(CompletableFuture<Void> written, List<BlockHash> chain) {
    }

    private final WriteBack writeBack;
    private final long roomWaitNanos;
    private final LongSupplier clock;
    private final Map<Long, SwapOut> out = new HashMap<>();
    /** Sequences waiting for the pool's room for their restore → when they first found none ({@link #clock}). */
    private final Map<Long, Long> roomAwaited = new HashMap<>();

    /**
     * @param roomWait how long a swapped-out sequence waits, in its place, for the room to restore
     * @param clock    {@link System#nanoTime} but in tests
     */
    SwapOuts(WriteBack writeBack, Duration roomWait, LongSupplier clock) {
        this.writeBack = writeBack;
        this.roomWaitNanos = roomWait.toNanos();
        this.clock = clock;
    }

    /**
     * A swap-out: queues {@code copies} (those the write-back lacks, within its room) ahead of every other write,
     * waiting for {@code chain}'s blocks already queued too, and remembers the writes for the resume, unless the
     * service neither gets nor is known to hold any block of the chain (then there is nothing to restore).
     */
    void swapOut(long seqId, List<BlockContents> copies, List<BlockHash> chain) {
        CompletableFuture<Void> written = writeBack.writeFirst(copies, chain);
        out.remove(seqId);
        roomAwaited.remove(seqId);
        if (writeBack.memory().known(chain) > 0) {
            out.put(seqId, new SwapOut(written, chain));
        }
    }

    /** The writes of the sequence's swap-out, or null when it has none to restore from. */
    CompletableFuture<Void> written(long seqId) {
        SwapOut s = out.get(seqId);
        return s == null ? null : s.written();
    }

    /**
     * The sequence resumes and the pool lacks the room for its whole context: whether it waits for that room in its
     * place (its swap-out left blocks to restore, the pool can ever hold the context, and it has not waited {@code
     * roomWait} yet). When not it is a swapped-out sequence no more: it resumes as it can, recomputing.
     *
     * @param fits the pool could hold the whole context (it is no larger than the pool)
     */
    boolean awaitRoom(long seqId, boolean fits) {
        SwapOut s = out.get(seqId);
        if (s != null && fits && writeBack.memory().known(s.chain()) > 0) {
            long now = clock.getAsLong();
            Long since = roomAwaited.putIfAbsent(seqId, now);
            if (since == null || now - since < roomWaitNanos) {
                return true;
            }
        }
        forget(seqId);
        return false;
    }

    /** Whether the sequence waits for room in its place (its last {@link #awaitRoom} said so). */
    boolean awaitingRoom(long seqId) {
        return roomAwaited.containsKey(seqId);
    }

    /** The pool has the room: the wait (if any) is over. */
    void roomFound(long seqId) {
        roomAwaited.remove(seqId);
    }

    /** The sequence's restore started, was preempted again, or it left: nothing is kept for it. */
    void forget(long seqId) {
        out.remove(seqId);
        roomAwaited.remove(seqId);
    }
}
