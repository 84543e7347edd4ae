package io.moemesh.gateway.kvcache;

import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The room for the block copies of the Attend offloads ({@link AttendOffload}): copies are heap beside the pool,
 * made on the engine thread, so the offloads hold at most the write-back's priority budget of them ({@code
 * write-back-queue-blocks}), each from its copy until its offload settles: stored and pinned, failed, or past {@code
 * offloadTimeout}. A sequence whose next copy finds no room keeps those blocks local until it does, and waits for that
 * room ({@link #await}) until it gets it (offloads hold it each at most their own {@code offloadTimeout}, so it comes
 * back), but not at all once the service looks down ({@link OffloadHealth}). Any thread.
 */
final class CopyRoom {
    /** The most the offloads may hold: the write-back's budget for priority copies. */
    private final int budget;
    private final long boundNanos;
    private final OffloadHealth health;
    /** Wakes the engine loop (the offload's, set before serving). */
    private final Runnable wakeUp;
    /** Block copies the offloads hold: from their offload until it settles. */
    private final AtomicInteger held = new AtomicInteger();
    /** Sequences waiting for copy room ({@link #await}) → when they first found none ({@link System#nanoTime}). */
    private final Map<Long, Long> awaited = new ConcurrentHashMap<>();

    CopyRoom(int budget, Duration offloadTimeout, OffloadHealth health, Runnable wakeUp) {
        this.budget = budget;
        this.boundNanos = offloadTimeout.toNanos();
        this.health = health;
        this.wakeUp = wakeUp;
    }

    /** Copies another offload may make now. */
    int room() {
        return Math.max(0, budget - held.get());
    }

    /**
     * A sequence short of copy room waits for it {@code offloadTimeout} from when it first found none, and past that
     * while offloads hold room: each gives it back within its own deadline, when it settles (and wakes the loop), so
     * a healthy service that is merely busy does not end a long sequence at the local pool. It does not wait once
     * the service looks down (the room would come back only by more failures). With no copy budget at all ({@code
     * write-back-queue-blocks} 0) it waits the bound only.
     */
    boolean await(long seqId) {
        long now = System.nanoTime();
        if (health.looksDown()) {
            return false;
        }
        Long since = awaited.putIfAbsent(seqId, now);
        if (since == null) {
            // The step boundary that ends the wait: nothing else may wake the loop (its sequences may all be waiting).
            CompletableFuture.delayedExecutor(boundNanos, TimeUnit.NANOSECONDS).execute(wakeUp);
            return true;
        }
        // Past the bound too while there is room to wait for: held by offloads, each within its deadline, or free
        // (it came back since the cache looked, and the next boundary starts the offload). No budget at all: none.
        return now - since < boundNanos || held.get() > 0 || room() > 0;
    }

    /** An offload of the sequence starts with {@code copies} copies: held until {@link #give}, its wait over. */
    void hold(long seqId, int copies) {
        awaited.remove(seqId);
        held.addAndGet(copies);
    }

    /** An offload settled: its copies' room is another's. */
    void give(int copies) {
        held.addAndGet(-copies);
    }

    /** The sequence was released: its wait is not remembered. */
    void forget(long seqId) {
        awaited.remove(seqId);
    }

    /** Sequences whose wait for copy room is remembered. */
    int waiters() {
        return awaited.size();
    }
}
