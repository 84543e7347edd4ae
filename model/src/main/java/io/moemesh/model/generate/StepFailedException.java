package io.moemesh.model.generate;

import java.util.concurrent.CancellationException;

/**
 * A step's forward pass failed with an exception whose type would read as a caller's mistake
 * ({@link IllegalArgumentException}, a {@code ModelFormatException} among them) or a refused precondition
 * ({@link IllegalStateException}): every sequence of the step ends with this instead. No request of the step caused
 * it (each was checked at submit, and they share the pass), so it is the server's failure: the services map it as
 * any unexpected exception (HTTP 500 / gRPC INTERNAL, a generic message on the wire, this and its cause logged),
 * where the cause itself went out as a 400 / INVALID_ARGUMENT carrying a server file's path. Other engine failures
 * keep their type: a server maps those already (an expert without a healthy replica is a 503 / UNAVAILABLE).
 */
public final class StepFailedException extends RuntimeException {

    private StepFailedException(RuntimeException cause) {
        super("the engine step failed: " + cause.getMessage(), cause);
    }

    /** What the sequences of a step that failed with {@code e} are told: {@code e}, or it wrapped (see above). */
    static RuntimeException of(RuntimeException e) {
        boolean misread = e instanceof IllegalArgumentException
                || e instanceof IllegalStateException && !(e instanceof CancellationException);
        return misread ? new StepFailedException(e) : e;
    }
}
