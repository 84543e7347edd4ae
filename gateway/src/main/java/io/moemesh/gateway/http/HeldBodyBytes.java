package io.moemesh.gateway.http;

import java.util.concurrent.atomic.AtomicLong;

/**
 * The bytes of HTTP request bodies received and not yet parsed, over all connections, bounded by
 * {@code moemesh.gateway.admission.max-held-request-bytes}. A body is received without a container thread
 * ({@link BodyIntake}), so the number of bodies arriving at once is bounded by the connections, not the workers:
 * without this budget, many connections that each send most of a small body and then stall would hold
 * connections × large-request-bytes of heap until their deadline. A body whose bytes would take the total past the
 * budget is refused 429 (Retry-After) and its bytes given back.
 */
final class HeldBodyBytes {
    static final String SETTING = "moemesh.gateway.admission.max-held-request-bytes";
    private final long max;
    private final AtomicLong held = new AtomicLong();

    HeldBodyBytes(long max) {
        if (max < 1) {
            throw new IllegalArgumentException(SETTING + " must be ≥ 1, got " + max);
        }
        this.max = max;
    }

    /** Adds {@code bytes} when the total stays within the budget; false (nothing added) otherwise. */
    boolean take(long bytes) {
        long now = held.addAndGet(bytes);
        if (now > max) {
            held.addAndGet(-bytes);
            return false;
        }
        return true;
    }

    void release(long bytes) {
        held.addAndGet(-bytes);
    }

    /** Bytes held now. */
    long held() {
        return held.get();
    }

    long max() {
        return max;
    }
}
