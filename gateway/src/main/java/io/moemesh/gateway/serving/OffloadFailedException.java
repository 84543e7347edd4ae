package io.moemesh.gateway.serving;

/**
 * A sequence whose attend offload failed no longer fits in the gateway's own KV pool before its first token (its
 * prompt alone passes the cap the pool sets): it ends with HTTP 503 {@code kvcache_unavailable} / UNAVAILABLE. The
 * message is about this request alone (its length and its cap), so clients are told it as it is.
 */
public final class OffloadFailedException extends RuntimeException {
    public OffloadFailedException(String message) {
        super(message);
    }
}
