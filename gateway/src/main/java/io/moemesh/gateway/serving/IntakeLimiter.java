package io.moemesh.gateway.serving;

import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Bounds the memory the public APIs spend on reading requests: a request larger than {@code largeRequestBytes}
 * (an HTTP body, a gRPC message) may be parsed and tokenized only while fewer than {@code maxConcurrentLarge}
 * others are; beyond that it is refused at once (429 / RESOURCE_EXHAUSTED with a retry hint), never queued, so a
 * burst of multi-megabyte requests cannot fill the heap with parse trees and pre-tokenizer copies. Small requests
 * are never limited here. The HTTP and the gRPC API share one limiter.
 */
public final class IntakeLimiter {
    /** Released when the request is parsed and tokenized; closing twice releases once. */
    public interface Permit extends AutoCloseable {
        @Override
        void close();
    }

    private static final Permit SMALL = () -> { };

    private final long largeRequestBytes;
    private final int maxConcurrentLarge;
    private final Semaphore large;
    private final AtomicLong largeAdmitted = new AtomicLong();

    /**
     * @param largeRequestBytes  sizes above this are large
     * @param maxConcurrentLarge large requests in intake at once, ≥ 1
     */
    public IntakeLimiter(long largeRequestBytes, int maxConcurrentLarge) {
        if (largeRequestBytes < 1 || maxConcurrentLarge < 1) {
            throw new IllegalArgumentException("large-request-bytes and max-concurrent-large-requests must be ≥ 1, got "
                    + largeRequestBytes + " and " + maxConcurrentLarge);
        }
        this.largeRequestBytes = largeRequestBytes;
        this.maxConcurrentLarge = maxConcurrentLarge;
        this.large = new Semaphore(maxConcurrentLarge);
    }

    public boolean isLarge(long bytes) {
        return bytes > largeRequestBytes;
    }

    /**
     * A permit for a request of {@code bytes} (a no-op one when it is not large).
     *
     * @throws OverloadedException when it is large and {@code maxConcurrentLarge} large requests are in intake
     */
    public Permit admit(long bytes) {
        if (!isLarge(bytes)) {
            return SMALL;
        }
        if (!large.tryAcquire()) {
            throw new OverloadedException(maxConcurrentLarge + " requests larger than " + largeRequestBytes
                    + " bytes are being read already; retry later", 1);
        }
        largeAdmitted.incrementAndGet();
        AtomicBoolean released = new AtomicBoolean();
        return () -> {
            if (released.compareAndSet(false, true)) {
                large.release();
            }
        };
    }

    /** Large requests in intake now (for tests and metrics). */
    public int largeInIntake() {
        return maxConcurrentLarge - large.availablePermits();
    }

    /** Large requests given a permit so far (for tests and metrics: unlike {@link #largeInIntake}, it never drops). */
    public long largeAdmitted() {
        return largeAdmitted.get();
    }
}
