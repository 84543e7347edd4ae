package io.moemesh.gateway.serving;

/**
 * A sequence whose blocks could not move to the kvcache-service (its attend offload failed, or none was tried because
 * the service looks down) no longer fits in the gateway's own KV pool before its first token (its prompt alone passes
 * what the pool holds): it ends with HTTP 503 {@code kvcache_unavailable} / UNAVAILABLE, never 400, since the
 * context the gateway advertises admits the prompt. The message is about this request alone (its length and its
 * cap), so clients are told it as it is.
 */
public final class OffloadFailedException extends RuntimeException {
    public OffloadFailedException(String message) {
        super(message);
    }
}
