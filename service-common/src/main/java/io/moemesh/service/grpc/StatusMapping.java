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
 * RESOURCE_EXHAUSTED, anything else INTERNAL. An INTERNAL status says only "internal error": the exception (its
 * class, message and stack) is its cause, for the caller to log, and never goes on the wire, where it could leak
 * implementation details (and a caller could not act on it anyway).
 */
public final class StatusMapping {
    /** The whole description of an INTERNAL status. */
    public static final String INTERNAL_DESCRIPTION = "internal error; the server logged the details";
    /**
     * Longest description put on a status. A description travels in the trailers, and a message that echoes a
     * multi-megabyte request field would exceed the client's header limit (8 KiB in grpc-java), turning a client
     * error into a transport failure.
     */
    public static final int MAX_DESCRIPTION_CHARS = 1024;

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
            return Status.INVALID_ARGUMENT.withDescription(bounded(t.getMessage()));
        }
        // Before IllegalStateException, its superclass: a cancelled future is CANCELLED, not a failed precondition.
        if (t instanceof CancellationException) {
            return Status.CANCELLED.withDescription(bounded(t.getMessage()));
        }
        if (t instanceof IllegalStateException) {
            return Status.FAILED_PRECONDITION.withDescription(bounded(t.getMessage()));
        }
        if (t instanceof SecurityException) {
            return Status.PERMISSION_DENIED.withDescription(bounded(t.getMessage()));
        }
        if (t instanceof RejectedExecutionException) {
            return Status.RESOURCE_EXHAUSTED.withDescription(bounded(t.getMessage()));
        }
        if (t instanceof TimeoutException) {
            return Status.DEADLINE_EXCEEDED.withDescription(bounded(t.getMessage()));
        }
        return Status.INTERNAL.withDescription(INTERNAL_DESCRIPTION).withCause(t);
    }

    /** {@code text} cut to {@link #MAX_DESCRIPTION_CHARS}, saying how long it was. */
    public static String bounded(String text) {
        if (text == null || text.length() <= MAX_DESCRIPTION_CHARS) {
            return text;
        }
        return text.substring(0, MAX_DESCRIPTION_CHARS - 40) + "… (" + text.length() + " characters in all)";
    }

    /** The same as a {@code google.rpc.Status} message, for per-message errors on a stream. */
    public static com.google.rpc.Status toRpcStatus(Throwable t) {
        Status s = toStatus(t);
        return com.google.rpc.Status.newBuilder().setCode(s.getCode().value())
                .setMessage(s.getDescription() == null ? "" : s.getDescription()).build();
    }
}
