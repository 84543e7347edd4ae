package io.moemesh.gateway.dispatch;

/**
 * No healthy replica of an expert a token was routed to: the step cannot be computed correctly, so the
 * requests in it fail (UNAVAILABLE) instead of returning wrong tokens.
 */
public final class ExpertUnavailableException extends RuntimeException {
    public ExpertUnavailableException(String message, Throwable cause) {
        super(message, cause);
    }
}
