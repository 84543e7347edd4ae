package io.moemesh.gateway.grpc;

import io.grpc.Status;
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
 * its detail logged with the request id ({@link PublicErrors}).
 */
final class GatewayStatus {
    private static final Logger log = LoggerFactory.getLogger(GatewayStatus.class);

    private GatewayStatus() {
    }

    static Status of(Throwable t, String requestId) {
        if (t instanceof ExpertUnavailableException || t instanceof NoPlacementException
                || t instanceof RemoteAttentionException) {
            // Their messages name instances, endpoints, other requests' sequences: the caller gets PublicErrors'.
            return Status.UNAVAILABLE.withDescription(PublicErrors.message(t, requestId));
        }
        if (t instanceof OffloadFailedException) {
            return Status.UNAVAILABLE.withDescription(t.getMessage());
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
        if (s.getCode() == Status.Code.INTERNAL || s.getCode() == Status.Code.UNKNOWN) {
            log.error("request {} failed", requestId, t);
            return Status.INTERNAL.withDescription("internal error; request id " + requestId);
        }
        return s;
    }
}
