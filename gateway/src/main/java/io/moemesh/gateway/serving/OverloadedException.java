package io.moemesh.gateway.serving;

/** Shortage, not a fault: the caller should retry after {@link #retryAfterSeconds()} (HTTP 429, RESOURCE_EXHAUSTED). */
public final class OverloadedException extends RuntimeException {
    private final int retryAfterSeconds;

    public OverloadedException(String message, int retryAfterSeconds) {
        super(message);
        this.retryAfterSeconds = retryAfterSeconds;
    }

    public int retryAfterSeconds() {
        return retryAfterSeconds;
    }
}
