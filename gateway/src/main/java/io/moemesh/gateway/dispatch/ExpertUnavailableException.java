package io.moemesh.gateway.dispatch;

/**
 * No healthy replica of an expert a token was routed to: the step cannot be computed correctly, so the
 * requests in it fail (UNAVAILABLE) instead of returning wrong tokens. Its message is for the log (it may name
 * instances and the placement's epoch); {@link #publicMessage()} is what a client is told.
 */
public final class ExpertUnavailableException extends RuntimeException {
    private final String publicMessage;

    /** A failure whose message names nothing internal: clients are told it as it is. */
    public ExpertUnavailableException(String message, Throwable cause) {
        this(message, message, cause);
    }

    /**
     * @param message       the whole story, for the log
     * @param publicMessage what failed without instance ids, endpoints or epochs, for the client
     */
    public ExpertUnavailableException(String message, String publicMessage, Throwable cause) {
        super(message, cause);
        this.publicMessage = publicMessage;
    }

    public String publicMessage() {
        return publicMessage;
    }
}
