package io.moemesh.model.engine;

import java.util.Set;

/**
 * A step could not get the attention partial over a remote prefix ({@link RemoteAttention} threw, or returned a
 * partial that is not a number): the step fails as it does when an expert has no healthy replica and no wrong token
 * is produced. When it names the sequences whose partial failed ({@link #sequences}), the scheduler ends only those
 * and runs the step again without them; otherwise every sequence of the step ends with it. The message names the
 * layer and the sequences; the cause is the implementation's exception. A server maps it like an unavailable
 * expert (UNAVAILABLE / HTTP 503).
 */
public final class RemoteAttentionException extends RuntimeException {
    private final Set<Long> sequences;

    /** Not known whose partial failed: the whole step's. */
    public RemoteAttentionException(String message, Throwable cause) {
        this(message, cause, Set.of());
    }

    /**
     * @param sequences the sequences whose remote attention failed (the others' was not asked for or arrived);
     *                  empty when not known
     */
    public RemoteAttentionException(String message, Throwable cause, Set<Long> sequences) {
        super(message, cause);
        this.sequences = Set.copyOf(sequences);
    }

    /** The sequences whose remote attention failed; empty when not known (then every sequence of the step). */
    public Set<Long> sequences() {
        return sequences;
    }
}
