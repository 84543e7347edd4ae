package io.moemesh.gateway.kvcache;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moemesh.gateway.serving.SequenceCaps;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
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
 * request or sequence ends without an offload outcome (cancelled, finished, failed before its offload was sent,
 * preempted: {@link Probe#ended}, {@link #released}) frees its claim at once, so the next long prompt probes rather
 * than being refused for the rest of a window with nothing probed; one whose offload never comes while it runs holds
 * the refusals one window at most, then another is let through. Any thread.
 */
final class OffloadHealth {
    /** Failures in a row after which the service looks down. */
    static final int DOWN_AFTER_FAILURES = 3;

    private final AtomicInteger failuresInARow = new AtomicInteger();
    /** Clock time of the last failure; written before the count, so a reader of the count sees it. */
    private volatile long lastFailureNanos;
    /** The probe under way, or null. */
    private final AtomicReference<Probe> probe = new AtomicReference<>();
    private final long windowNanos;
    /** Nanosecond clock ({@link System#nanoTime} in service); a test's own so windows do not depend on its speed. */
    private volatile LongSupplier nanos;

    /** @param offloadTimeout how long an offload may take: the refusal window (its remainder the Retry-After) */
    OffloadHealth(Duration offloadTimeout, LongSupplier nanos) {
        this.windowNanos = offloadTimeout.toNanos();
        this.nanos = nanos;
    }

    /**
     * The long prompt let through as the probe at {@code since}: its claim holds the other long prompts off until an
     * offload's outcome ({@link #pinned}, {@link #failed}), its end ({@link #ended}, {@link #released}) or a window.
     */
    private final class Probe implements SequenceCaps.Admitted {
        final long since;
        /** Its sequence, once submitted; -1 before. */
        volatile long seqId = -1;

        Probe(long since) {
            this.since = since;
        }

        @Override
        public void submitted(long seqId) {
            this.seqId = seqId;
        }

        /** Frees the claim unless an outcome (or a later probe) replaced it already. */
        @Override
        public void ended() {
            probe.compareAndSet(this, null);
        }
    }

    /** An offload the service did not answer in time (or at all): opens a new window, ends a probe. */
    void failed() {
        lastFailureNanos = nanos.getAsLong();
        probe.set(null);
        failuresInARow.incrementAndGet();
    }

    /** An offload pinned: the service answers, nothing is refused. */
    void pinned() {
        failuresInARow.set(0);
        probe.set(null);
    }

    /** The KV cache released the sequence (it ended, or was preempted): if it is the probe's, its claim is freed. */
    void released(long seqId) {
        Probe p = probe.get();
        if (p != null && p.seqId == seqId) {
            p.ended();
        }
    }

    boolean looksDown() {
        return failuresInARow.get() >= DOWN_AFTER_FAILURES;
    }

    /** Whether a long prompt would be refused now, without claiming the probe (see the class comment). */
    boolean refusing() {
        return looksDown() && refusedUntil(nanos.getAsLong()) != Long.MIN_VALUE;
    }

    /**
     * Whether a prompt longer than the pool is let through now (empty: refused); when it is while the service looks
     * down, the caller is the probe, and the next callers are refused until its claim (returned) is freed or its
     * offload settles (see the class comment).
     */
    Optional<SequenceCaps.Admitted> admitLongPrompt() {
        if (!looksDown()) {
            return Optional.of(SequenceCaps.Admitted.PLAIN);
        }
        long now = nanos.getAsLong();
        if (refusedUntil(now) != Long.MIN_VALUE) {
            return Optional.empty();
        }
        Probe previous = probe.get();
        Probe claim = new Probe(now);
        // Only one caller wins the probe; the losers are refused as during a probe.
        return probe.compareAndSet(previous, claim) ? Optional.of(claim) : Optional.empty();
    }

    /** The end of the refusal (window or probe) under way at {@code now}, or Long.MIN_VALUE when none is. */
    private long refusedUntil(long now) {
        long windowEnd = lastFailureNanos + windowNanos;
        if (now - windowEnd < 0) {
            return windowEnd;
        }
        Probe p = probe.get();
        if (p != null && now - (p.since + windowNanos) < 0) {
            return p.since + windowNanos;
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
