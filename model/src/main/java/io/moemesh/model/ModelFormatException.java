package io.moemesh.model;

/**
 * A model directory, tokenizer, checkpoint or request that this code cannot honour: a missing or malformed
 * file, an unsupported feature, a wrong shape. The message names the file or parameter and what is wrong, so
 * the CLI can print it as is (exit code 2) and the services can map it to INVALID_ARGUMENT /
 * FAILED_PRECONDITION. It is an {@link IllegalArgumentException} because it is always the input's fault.
 */
public final class ModelFormatException extends IllegalArgumentException {
    public ModelFormatException(String message) {
        super(message);
    }

    public ModelFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
