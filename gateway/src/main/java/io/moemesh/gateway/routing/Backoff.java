package io.moemesh.gateway.routing;

import java.time.Duration;
import java.util.function.DoubleSupplier;

/**
 * Exponential backoff with jitter for reconnecting to the router (and for connecting a refused placement again):
 * the n-th failure in a row waits a random time
 * in [d/2, d], d = min(max, initial × 2^(n−1)) ("equal jitter": never a zero wait that would hammer a restarting
 * router, and gateways that lost it at the same moment spread their retries). {@link #reset()} after a success.
 * Not thread-safe: each retry loop owns one.
 */
public final class Backoff {
    private final Duration initial;
    private final Duration max;
    private final DoubleSupplier random;
    private int failures;

    /** @param random uniform in [0, 1) */
    public Backoff(Duration initial, Duration max, DoubleSupplier random) {
        if (initial.isNegative() || initial.isZero() || max.compareTo(initial) < 0) {
            throw new IllegalArgumentException("backoff needs 0 < initial <= max, got " + initial + " and " + max);
        }
        this.initial = initial;
        this.max = max;
        this.random = random;
    }

    /** The wait before the next attempt after one more failure. */
    public Duration next() {
        failures++;
        long bound = initial.toNanos();
        for (int i = 1; i < failures && bound < max.toNanos(); i++) {
            bound *= 2;
        }
        bound = Math.min(bound, max.toNanos());
        return Duration.ofNanos(bound / 2 + (long) (random.getAsDouble() * (bound - bound / 2)));
    }

    /** Failures in a row so far. */
    public int failures() {
        return failures;
    }

    public void reset() {
        failures = 0;
    }
}
