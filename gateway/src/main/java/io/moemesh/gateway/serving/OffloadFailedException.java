package io.moemesh.gateway.serving;

/**
 * A sequence whose blocks could not move to the kvcache-service (its attend offload failed, or none was tried because
 * the service looks down) no longer fits in the gateway's own KV pool before its first token (its prompt alone passes
 * what the pool holds): it ends with HTTP 503 {@code kvcache_unavailable} / UNAVAILABLE, never 400, since the
 * context the gateway advertises admits the prompt. The message is about this request alone (its length and its
 * cap), so clients are told it as it is. While the service looks down such a prompt is refused so at submit, before
 * any prefill ({@link SequenceCaps#admitPrompt}). Retry-After is {@link #retryAfterSeconds()} ({@link
 * SequenceCaps#retryAfterSeconds}): while such prompts are refused, what remains of the refusal, within which a retry
 * would only be refused again; otherwise 1. The message ends with that wait (gRPC has no Retry-After).
 */
public final class OffloadFailedException extends RuntimeException {
    private final int retryAfterSeconds;

    public OffloadFailedException(String message, int retryAfterSeconds) {
        super(message);
        this.retryAfterSeconds = retryAfterSeconds;
    }

    /** Seconds the client should wait before a retry (HTTP Retry-After), at least 1. */
    public int retryAfterSeconds() {
        return retryAfterSeconds;
    }
}
