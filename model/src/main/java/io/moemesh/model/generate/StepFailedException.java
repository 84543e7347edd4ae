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
 *
 * <p>The same holds for one sequence whose logits the pass made not finite ({@link #notFinite}): the
 * {@link Sampler} refuses them with an {@link IllegalStateException}, which would go out as a FAILED_PRECONDITION
 * (unlogged), though the request was valid and only the engine's arithmetic broke; that sequence alone ends with
 * this.
 *
 * <p>Likewise for one sequence whose admission failed ({@link #admission}): the prefix source broke its contract
 * (the scheduler refuses its answer with an {@link IllegalStateException}) or threw a misread type itself. The request
 * was checked at submit, so the failure is the server's, not the caller's.
 */
public final class StepFailedException extends RuntimeException {

    private StepFailedException(RuntimeException cause) {
        this("the engine step failed: " + cause.getMessage(), cause);
    }

    private StepFailedException(String message, RuntimeException cause) {
        super(message, cause);
    }

    /** What sequence {@code id} is told when the sampler refused its row of logits with {@code e}. */
    static StepFailedException notFinite(long id, IllegalStateException e) {
        return new StepFailedException("sequence " + id + ": " + e.getMessage(), e);
    }

    /**
     * What sequence {@code id} is told when its admission (the prefix source, its KV reservation) failed with
     * {@code e}: {@code e} wrapped when its type would read as the caller's mistake or a refused precondition, as in
     * {@link #of}; a cancellation or a type the services map by itself stays as it is.
     */
    static RuntimeException admission(long id, RuntimeException e) {
        return misread(e) ? new StepFailedException("sequence " + id + ": admission failed: " + e.getMessage(), e) : e;
    }

    private static boolean misread(RuntimeException e) {
        return e instanceof IllegalArgumentException
                || e instanceof IllegalStateException && !(e instanceof CancellationException);
    }

    /** What the sequences of a step that failed with {@code e} are told: {@code e}, or it wrapped (see above). */
    static RuntimeException of(RuntimeException e) {
        return misread(e) ? new StepFailedException(e) : e;
    }
}
