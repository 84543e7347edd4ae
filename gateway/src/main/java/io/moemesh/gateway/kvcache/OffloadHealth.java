package io.moemesh.gateway.kvcache;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Whether the kvcache-service looks down to the Attend offloads: from {@value #DOWN_AFTER_FAILURES} offloads in a row
 * that failed (one alone, a full service declining or a sequence's own timeout, says nothing of the others'), until
 * one pins again. While it looks down and its last failure is younger than the offload timeout, a prompt longer than
 * the pool is refused before its prefill ({@link #refusesLongPrompts}): it would fill the pool with no block able to
 * move out and end with the same 503, at the cost of a whole pool's prefill per retry. Past that window one is let
 * through again, so a service that came back is found by its offload even when only long prompts arrive; its failure
 * opens the window again. Any thread.
 */
final class OffloadHealth {
    /** Failures in a row after which the service looks down. */
    static final int DOWN_AFTER_FAILURES = 3;

    private final AtomicInteger failuresInARow = new AtomicInteger();
    /** {@link System#nanoTime()} of the last failure; written before the count, so a reader of the count sees it. */
    private volatile long lastFailureNanos;
    private final long windowNanos;
    private final int retryAfterSeconds;

    /** @param offloadTimeout how long an offload may take: the window, and (rounded up to seconds) the Retry-After */
    OffloadHealth(Duration offloadTimeout) {
        this.windowNanos = offloadTimeout.toNanos();
        // Whole seconds (Retry-After's unit), rounded up so a client that waits them finds the window closed.
        this.retryAfterSeconds = (int) Math.max(1, Math.min(Integer.MAX_VALUE,
                (offloadTimeout.toMillis() + 999) / 1000));
    }

    void failed() {
        lastFailureNanos = System.nanoTime();
        failuresInARow.incrementAndGet();
    }

    void pinned() {
        failuresInARow.set(0);
    }

    boolean looksDown() {
        return failuresInARow.get() >= DOWN_AFTER_FAILURES;
    }

    /** The service looks down and failed within the last offload timeout: see the class comment. */
    boolean refusesLongPrompts() {
        return looksDown() && System.nanoTime() - lastFailureNanos < windowNanos;
    }

    /** Seconds a refused client should wait: the offload timeout, rounded up, at least 1. */
    int retryAfterSeconds() {
        return retryAfterSeconds;
    }
}
