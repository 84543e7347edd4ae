package io.moemesh.gateway.grpc;

import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moemesh.gateway.dispatch.ExpertUnavailableException;
import io.moemesh.gateway.dispatch.NoPlacementException;
import io.moemesh.gateway.scheduling.EngineStoppedException;
import io.moemesh.gateway.serving.DrainExpiredException;
import io.moemesh.gateway.serving.DrainingException;
import io.moemesh.gateway.serving.OffloadFailedException;
import io.moemesh.gateway.serving.OverloadedException;
import io.moemesh.gateway.serving.PublicErrors;
import io.moemesh.model.engine.RemoteAttentionException;
import io.moemesh.service.grpc.StatusMapping;
import java.util.concurrent.CancellationException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The gateway's exception → Status mapping: the shared one, plus the data path's own failures. An INTERNAL status
 * (a bug) is logged here once, with the request id, and says only "internal error" and that id on the wire; an
 * UNAVAILABLE whose cause names internal endpoints, instances or other requests says what failed in general terms,
 * its detail logged with the request id ({@link PublicErrors}). A Generate the gateway ends with an error status of its
 * own (refused before its first message, failed before its first token, or a stalled stream it could not reset)
 * carries its request id in the trailer {@link #REQUEST_ID} ({@link #ending}): one refused before its first message
 * would otherwise never tell its client the id the server assigned, the one the log names. No trailer where no such
 * status is sent: a stalled stream reset (RST_STREAM, the client sees CANCELLED), a call the client cancelled or
 * whose deadline passed, a failure after tokens (a final message, the call OK), and calls refused before their
 * request is read or parsed (no id exists yet); nor on Tokenize or ModelInfo, which have no request id
 * ({@link #ofCall}).
 */
final class GatewayStatus {
    private static final Logger log = LoggerFactory.getLogger(GatewayStatus.class);
    /** The trailer of a Generate's error status that carries its request id: the HTTP API's header name. */
    static final Metadata.Key<String> REQUEST_ID = Metadata.Key.of("x-request-id", Metadata.ASCII_STRING_MARSHALLER);

    private GatewayStatus() {
    }

    /** {@link #of}, as what ends the call of request {@code requestId}: {@link #ending(Status, String)}. */
    static StatusRuntimeException ending(Throwable t, String requestId) {
        return ending(of(t, requestId), requestId);
    }

    /**
     * {@code status} with the trailer {@link #REQUEST_ID}: the request id, when it is printable ASCII without spaces
     * (metadata values are ASCII, and a space at either end may be trimmed on the way): always a server-assigned id
     * (a UUID); a caller's own id otherwise goes without it (the caller knows it), as does one that was refused.
     */
    static StatusRuntimeException ending(Status status, String requestId) {
        Metadata trailers = new Metadata();
        if (asciiId(requestId)) {
            trailers.put(REQUEST_ID, requestId);
        }
        return status.asRuntimeException(trailers);
    }

    private static boolean asciiId(String id) {
        if (id == null || id.isEmpty() || id.length() > PromptBuilder.MAX_REQUEST_ID_BYTES) {
            return false;
        }
        for (int i = 0; i < id.length(); i++) {
            char c = id.charAt(i);
            if (c < 0x21 || c > 0x7e) {
                return false;
            }
        }
        return true;
    }

    /**
     * The status of a call that has no request id (Tokenize, ModelInfo, a refusal before the request is read):
     * as {@link #of}, an internal failure logged and described by the call's name {@code rpc} instead of an id.
     */
    static Status ofCall(Throwable t, String rpc) {
        Status s = map(t, rpc);
        if (s == null) {
            log.error("{} failed", rpc, t);
            return Status.INTERNAL.withDescription("internal error in " + rpc + "; the gateway's log has the details");
        }
        return s;
    }

    static Status of(Throwable t, String requestId) {
        Status s = map(t, requestId);
        if (s == null) {
            log.error("request {} failed", requestId, t);
            return Status.INTERNAL.withDescription("internal error; request id " + requestId);
        }
        return s;
    }

    /** The status of {@code t}; null for an internal failure (INTERNAL or UNKNOWN), which the caller logs. */
    private static Status map(Throwable t, String requestId) {
        if (t instanceof ExpertUnavailableException || t instanceof NoPlacementException
                || t instanceof RemoteAttentionException) {
            // Their messages name instances, endpoints, other requests' sequences: the caller gets PublicErrors'.
            return Status.UNAVAILABLE.withDescription(PublicErrors.message(t, requestId));
        }
        if (t instanceof OffloadFailedException o) {
            // gRPC has no Retry-After: the message already ends with the wait the HTTP API's header says.
            return Status.UNAVAILABLE.withDescription(o.getMessage());
        }
        if (t instanceof OverloadedException o) {
            return Status.RESOURCE_EXHAUSTED.withDescription(o.getMessage() + " (retry after " + o.retryAfterSeconds() + " s)");
        }
        if (t instanceof DrainingException || t instanceof DrainExpiredException || t instanceof EngineStoppedException) {
            return Status.UNAVAILABLE.withDescription(t.getMessage());
        }
        if (t instanceof CancellationException) {
            return Status.CANCELLED.withDescription("the request was cancelled");
        }
        Status s = StatusMapping.toStatus(t);
        return s.getCode() == Status.Code.INTERNAL || s.getCode() == Status.Code.UNKNOWN ? null : s;
    }
}
