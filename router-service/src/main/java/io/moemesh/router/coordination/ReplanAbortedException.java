package io.moemesh.router.coordination;

/**
 * A new epoch was not published because an instance did not load its assignment; the previous epoch stays current.
 * Mapped to ABORTED: retrying the replan later (once the instance is back) is the remedy.
 */
public final class ReplanAbortedException extends RuntimeException {
    public ReplanAbortedException(String message, Throwable cause) {
        super(message, cause);
    }
}
