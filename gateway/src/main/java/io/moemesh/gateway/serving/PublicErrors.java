package io.moemesh.gateway.serving;

import io.moemesh.gateway.dispatch.ExpertUnavailableException;
import io.moemesh.gateway.dispatch.NoPlacementException;
import io.moemesh.model.engine.RemoteAttentionException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What a client is told of a failure whose message is written for operators: the kvcache-service's Attend failure
 * names its endpoint (a socket path under a home directory) and every sequence whose Attend failed in that layer,
 * other tenants' included (each of those requests gets it; the others of the step go on); an expert without a
 * healthy replica names the instances it is placed on and the epoch; a missing placement names the router's
 * endpoint. The public message (HTTP error JSON, gRPC status description, a stream's
 * error event) says what failed in general terms; the full message goes to the log once, with the request id, where
 * an operator looks it up. Every other failure's message is already about the request alone and is shown as it is.
 */
public final class PublicErrors {
    private static final Logger log = LoggerFactory.getLogger(PublicErrors.class);
    static final String ATTEND_FAILED = "the KV-cache service failed to attend this request's offloaded prefix; retry";
    static final String NO_PLACEMENT = "no expert placement yet: the gateway is waiting for its first one; retry shortly";

    private PublicErrors() {
    }

    /** The message to show for {@code t}; when that is not its own message, the latter is logged with the request id. */
    public static String message(Throwable t, String requestId) {
        String shown = switch (t) {
            case RemoteAttentionException e -> ATTEND_FAILED;
            case ExpertUnavailableException e -> e.publicMessage();
            case NoPlacementException e -> NO_PLACEMENT;
            default -> t.getMessage();
        };
        if (shown != null && !shown.equals(t.getMessage())) {
            log.warn("request {} failed: {}", requestId, t.getMessage());
        }
        return shown;
    }
}
