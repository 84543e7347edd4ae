package io.moemesh.expert.residency;

import io.moemesh.model.engine.ExpertKey;

/**
 * An expert's weights could not be loaded: a weights file deleted, truncated or corrupt since the model was
 * opened (the model's ModelFormatException, an UncheckedIOException). Never the caller's fault, since every key is
 * checked against the model before it is loaded, so not an IllegalArgumentException: the services' StatusMapping
 * answers it INTERNAL with its generic description (the file's path stays off the wire) and the service logs it at
 * error with this message and its cause.
 */
public final class ExpertLoadException extends RuntimeException {
    public ExpertLoadException(ExpertKey key, RuntimeException cause) {
        super("cannot load the weights of " + key + ": " + cause.getMessage(), cause);
    }
}
