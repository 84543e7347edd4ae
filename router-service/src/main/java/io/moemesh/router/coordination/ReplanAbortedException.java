package io.moemesh.router.coordination;

import java.util.Map;

/**
 * A new epoch was not published because an instance did not load its assignment; the previous epoch stays current.
 * Mapped to ABORTED: retrying the replan later (once the instance is back) is the remedy.
 */
public final class ReplanAbortedException extends RuntimeException {
    /** The instances that failed, by id, with what failed (for {@link Quarantine}). */
    private final transient Map<String, String> failedInstances;

    public ReplanAbortedException(String message, Throwable cause) {
        this(message, cause, Map.of());
    }

    public ReplanAbortedException(String message, Throwable cause, Map<String, String> failedInstances) {
        super(message, cause);
        this.failedInstances = Map.copyOf(failedInstances);
    }

    /** The ids of the instances whose failure stopped the epoch, each with its failure. */
    public Map<String, String> failedInstances() {
        return failedInstances;
    }
}
