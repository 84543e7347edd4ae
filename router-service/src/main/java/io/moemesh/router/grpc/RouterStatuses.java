package io.moemesh.router.grpc;

import io.grpc.Status;
import io.moemesh.router.coordination.ReplanAbortedException;
import io.moemesh.service.grpc.StatusMapping;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;

/**
 * The router's one exception → Status mapping: a replan whose epoch an instance failed to load is ABORTED (the
 * message names the instance; the previous epoch stays current); everything else as every service maps it
 * ({@link StatusMapping}: caller mistakes INVALID_ARGUMENT naming the field, a replan running or no epoch yet
 * FAILED_PRECONDITION, anything unexpected INTERNAL without details on the wire).
 */
public final class RouterStatuses {
    private RouterStatuses() {
    }

    public static Status toStatus(Throwable t) {
        while ((t instanceof CompletionException || t instanceof ExecutionException) && t.getCause() != null) {
            t = t.getCause();
        }
        if (t instanceof ReplanAbortedException) {
            return Status.ABORTED.withDescription(StatusMapping.bounded(t.getMessage()));
        }
        return StatusMapping.toStatus(t);
    }
}
