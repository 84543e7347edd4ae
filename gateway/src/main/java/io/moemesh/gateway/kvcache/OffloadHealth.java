package io.moemesh.gateway.kvcache;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;

/**
 * Whether the kvcache-service looks down to the Attend offloads: from {@value #DOWN_AFTER_FAILURES} offloads in a row
 * the service did not answer (a transport error or a timeout; a full service declining, or a sequence released
 * meanwhile, says nothing of the service and is not counted), until one pins again. While it looks down a prompt
 * longer than the pool is refused before its prefill ({@link #refusesLongPrompts}): it would fill the pool with no
 * block able to move out and end with the same 503, at the cost of a whole pool's prefill per retry. It is refused
 * for the offload timeout after the last failure (the window); past it exactly one long prompt is let through, the
 * probe, so a service that came back is found by its offload even when only long prompts arrive, and the others are
 * refused until the probe's offload settles: a pin ends the refusals, a failure opens a new window. A probe whose
 * offload never comes (cancelled, failed before it) holds the refusals one window at most, then another is let
 * through. Any thread.
 */
final class OffloadHealth {
    /** Failures in a row after which the service looks down. */
    static final int DOWN_AFTER_FAILURES = 3;
    /** {@link #probeSince}: no probe under way. */
    private static final long NO_PROBE = Long.MIN_VALUE;

    private final AtomicInteger failuresInARow = new AtomicInteger();
    /** Clock time of the last failure; written before the count, so a reader of the count sees it. */
    private volatile long lastFailureNanos;
    /** Clock time the probe was let through, or {@link #NO_PROBE}. */
    private final AtomicLong probeSince = new AtomicLong(NO_PROBE);
    private final long windowNanos;
    /** Nanosecond clock ({@link System#nanoTime} in service); a test's own so windows do not depend on its speed. */
    private volatile LongSupplier nanos;

    /** @param offloadTimeout how long an offload may take: the refusal window (its remainder the Retry-After) */
    OffloadHealth(Duration offloadTimeout, LongSupplier nanos) {
        this.windowNanos = offloadTimeout.toNanos();
        this.nanos = nanos;
    }

    /** An offload the service did not answer in time (or at all): opens a new window, ends a probe. */
    void failed() {
        lastFailureNanos = nanos.getAsLong();
        probeSince.set(NO_PROBE);
        failuresInARow.incrementAndGet();
    }

    /** An offload pinned: the service answers, nothing is refused. */
    void pinned() {
        failuresInARow.set(0);
        probeSince.set(NO_PROBE);
    }

    boolean looksDown() {
        return failuresInARow.get() >= DOWN_AFTER_FAILURES;
    }

    /** Whether a long prompt would be refused now, without claiming the probe (see the class comment). */
    boolean refusing() {
        return looksDown() && refusedUntil(nanos.getAsLong()) != Long.MIN_VALUE;
    }

    /**
     * Whether a prompt longer than the pool is refused now; when it is not while the service looks down, the caller
     * is the probe (see the class comment), and the next callers are refused until its offload settles.
     */
    boolean refusesLongPrompts() {
        if (!looksDown()) {
            return false;
        }
        long now = nanos.getAsLong();
        if (refusedUntil(now) != Long.MIN_VALUE) {
            return true;
        }
        long probe = probeSince.get();
        // Only one caller wins the probe; the losers are refused as during a probe.
        return !probeSince.compareAndSet(probe, now);
    }

    /** The end of the refusal (window or probe) under way at {@code now}, or Long.MIN_VALUE when none is. */
    private long refusedUntil(long now) {
        long windowEnd = lastFailureNanos + windowNanos;
        if (now - windowEnd < 0) {
            return windowEnd;
        }
        long probe = probeSince.get();
        if (probe != NO_PROBE && now - (probe + windowNanos) < 0) {
            return probe + windowNanos;
        }
        return Long.MIN_VALUE;
    }

    /**
     * Seconds a refused client should wait: while prompts are refused, what remains of the refusal rounded up, so a
     * client that waits them finds it over; otherwise (a prompt's own offload failed) 1. At least 1.
     */
    int retryAfterSeconds() {
        if (!looksDown()) {
            return 1;
        }
        long now = nanos.getAsLong();
        long until = refusedUntil(now);
        if (until == Long.MIN_VALUE) {
            return 1;
        }
        long remaining = until - now;
        return (int) Math.max(1, Math.min(Integer.MAX_VALUE, (remaining + 999_999_999L) / 1_000_000_000L));
    }

    /**
     * Whether {@code e} says the service did not answer: a transport error or a missed deadline (gRPC UNAVAILABLE or
     * DEADLINE_EXCEEDED, or the offload's own timeout). An answer (a refusal, a bad reply) is not one.
     */
    static boolean unanswered(Throwable e) {
        while (e instanceof CompletionException && e.getCause() != null) {
            e = e.getCause();
        }
        if (e instanceof TimeoutException) {
            return true;
        }
        return e instanceof StatusRuntimeException s && (s.getStatus().getCode() == Status.Code.UNAVAILABLE
                || s.getStatus().getCode() == Status.Code.DEADLINE_EXCEEDED);
    }

    /** Clock time of the last failure (a test freezes its clock there to hold the window open). */
    long lastFailureNanos() {
        return lastFailureNanos;
    }

    /** Replaces the clock: a test's, so that the window it checks does not close while a slow machine runs it. */
    void clock(LongSupplier nanos) {
        this.nanos = nanos;
    }
}
