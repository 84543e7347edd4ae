package io.moemesh.gateway.grpc;

import io.grpc.Status;
import io.moemesh.gateway.dispatch.ExpertUnavailableException;
import io.moemesh.gateway.serving.DrainingException;
import io.moemesh.gateway.serving.OverloadedException;
import io.moemesh.service.grpc.StatusMapping;
import java.util.concurrent.CancellationException;

/** The gateway's exception → Status mapping: the shared one, plus the data path's own failures. */
final class GatewayStatus {
    private GatewayStatus() {
    }

    static Status of(Throwable t) {
        if (t instanceof ExpertUnavailableException) {
            return Status.UNAVAILABLE.withDescription(t.getMessage());
        }
        if (t instanceof OverloadedException o) {
            return Status.RESOURCE_EXHAUSTED.withDescription(o.getMessage() + " (retry after " + o.retryAfterSeconds() + " s)");
        }
        if (t instanceof DrainingException) {
            return Status.UNAVAILABLE.withDescription(t.getMessage());
        }
        if (t instanceof CancellationException) {
            return Status.CANCELLED.withDescription("the request was cancelled");
        }
        return StatusMapping.toStatus(t);
    }
}
