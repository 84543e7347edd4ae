package io.moemesh.model.engine;

/**
 * A step could not get the attention partial over a remote prefix ({@link RemoteAttention} threw, or returned a
 * partial that is not a number): the step fails as it does when an expert has no healthy replica, its sequences
 * end with this error and no wrong token is produced. The message names the layer and the sequences; the cause is
 * the implementation's exception. A server maps it like an unavailable expert (UNAVAILABLE / HTTP 503).
 */
public final class RemoteAttentionException extends RuntimeException {
    public RemoteAttentionException(String message, Throwable cause) {
        super(message, cause);
    }
}
