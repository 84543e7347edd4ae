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
 * a caller whose identity may not make the call ({@link SecurityException}) PERMISSION_DENIED, shortage
 * RESOURCE_EXHAUSTED, anything else INTERNAL with the message (never a stack trace on the wire).
 */
public final class StatusMapping {
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
        if (t instanceof SecurityException) {
            return Status.PERMISSION_DENIED.withDescription(t.getMessage());
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
        return Status.INTERNAL.withDescription(t.getClass().getSimpleName() + ": " + t.getMessage()).withCause(t);
    }

    /** The same as a {@code google.rpc.Status} message, for per-message errors on a stream. */
    public static com.google.rpc.Status toRpcStatus(Throwable t) {
        Status s = toStatus(t);
        return com.google.rpc.Status.newBuilder().setCode(s.getCode().value())
                .setMessage(s.getDescription() == null ? "" : s.getDescription()).build();
    }
}
