package io.moemesh.service.grpc;

import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.StatusRuntimeException;
import java.util.concurrent.CancellationException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeoutException;

/**
 * The one exception → gRPC Status mapping of the services: caller mistakes ({@link IllegalArgumentException})
 * are INVALID_ARGUMENT, state that does not allow the call ({@link IllegalStateException}) FAILED_PRECONDITION,
 * shortage RESOURCE_EXHAUSTED, anything else INTERNAL. An INTERNAL status says only "internal error": the
 * exception (its class, message and stack) is its cause, for the caller to log, and never goes on the wire, where
 * it could leak implementation details (and a caller could not act on it anyway).
 */
public final class StatusMapping {
    /** The whole description of an INTERNAL status. */
    public static final String INTERNAL_DESCRIPTION = "internal error; the server logged the details";

    private StatusMapping() {
    }

    public static Status toStatus(Throwable t) {
        if (t instanceof StatusRuntimeException e) {
            return e.getStatus();
        }
        if (t instanceof StatusException e) {
            return e.getStatus();
        }
        if (t instanceof IllegalArgumentException) {
            return Status.INVALID_ARGUMENT.withDescription(t.getMessage());
        }
        if (t instanceof IllegalStateException) {
            return Status.FAILED_PRECONDITION.withDescription(t.getMessage());
        }
        if (t instanceof RejectedExecutionException) {
            return Status.RESOURCE_EXHAUSTED.withDescription(t.getMessage());
        }
        if (t instanceof TimeoutException) {
            return Status.DEADLINE_EXCEEDED.withDescription(t.getMessage());
        }
        if (t instanceof CancellationException) {
            return Status.CANCELLED.withDescription(t.getMessage());
        }
        return Status.INTERNAL.withDescription(INTERNAL_DESCRIPTION).withCause(t);
    }

    /** The same as a {@code google.rpc.Status} message, for per-message errors on a stream. */
    public static com.google.rpc.Status toRpcStatus(Throwable t) {
        Status s = toStatus(t);
        return com.google.rpc.Status.newBuilder().setCode(s.getCode().value())
                .setMessage(s.getDescription() == null ? "" : s.getDescription()).build();
    }
}
