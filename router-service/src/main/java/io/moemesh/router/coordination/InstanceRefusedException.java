package io.moemesh.router.coordination;

/**
 * An instance answered a LoadAssignment call and refused it because of its state (FAILED_PRECONDITION), as opposed
 * to not answering (unreachable, deadline exceeded) or failing otherwise.
 */
public final class InstanceRefusedException extends IllegalStateException {
    public InstanceRefusedException(String message, Throwable cause) {
        super(message, cause);
    }
}
