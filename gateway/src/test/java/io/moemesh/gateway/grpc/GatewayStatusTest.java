package io.moemesh.gateway.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moemesh.gateway.dispatch.ExpertUnavailableException;
import io.moemesh.gateway.dispatch.NoPlacementException;
import io.moemesh.model.engine.RemoteAttentionException;
import org.junit.jupiter.api.Test;

/**
 * The gateway's exception → Status mapping for the data path's own failures: what failed, in general terms, never an
 * internal endpoint, instance, epoch or another request's sequence (those go to the log with the request id).
 */
class GatewayStatusTest {

    @Test
    void aRemoteAttentionFailure_isUnavailable_sayingWhatFailed_withoutTheEndpointOrOtherSequences() {
        Status s = GatewayStatus.of(new RemoteAttentionException("layer 2: remote attention over the prefixes of "
                + "sequences [3, 9] failed: Attend of sequence 9 at the kvcache-service "
                + "unix:///home/alice/.moemesh/sockets/kvcache.sock failed: UNAVAILABLE",
                new IllegalStateException("cause")), "req-1");
        assertThat(s.getCode()).isEqualTo(Status.Code.UNAVAILABLE);
        assertThat(s.getDescription()).isEqualTo("the KV-cache service failed to attend this request's offloaded "
                + "prefix; retry");
    }

    @Test
    void anExpertWithoutAHealthyReplica_isUnavailable_namingTheExpert_notItsInstancesOrTheEpoch() {
        Status s = GatewayStatus.of(new ExpertUnavailableException("layer 1 expert 2 has no healthy replica (placed on "
                + "expert-pod-7f9c, epoch 12)", "layer 1 expert 2 has no healthy replica; retry", null), "req-2");
        assertThat(s.getCode()).isEqualTo(Status.Code.UNAVAILABLE);
        assertThat(s.getDescription()).isEqualTo("layer 1 expert 2 has no healthy replica; retry");
    }

    @Test
    void noPlacementYet_isUnavailable_withoutTheRoutersAddress() {
        Status s = GatewayStatus.of(new NoPlacementException("no expert placement yet: waiting for the router at "
                + "router.internal:9100"), "req-3");
        assertThat(s.getCode()).isEqualTo(Status.Code.UNAVAILABLE);
        assertThat(s.getDescription()).doesNotContain("router.internal").startsWith("no expert placement yet");
    }

    @Test
    void anEndingStatus_carriesTheRequestIdInTheTrailers_unlessItIsNotPrintableAsciiWithoutSpaces() {
        StatusRuntimeException e = GatewayStatus.ending(new NoPlacementException("no expert placement yet"), "req-4");
        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
        assertThat(e.getTrailers().get(GatewayStatus.REQUEST_ID)).isEqualTo("req-4");

        // A caller's own id may be any UTF-8 without control characters; metadata values are ASCII.
        assertThat(GatewayStatus.ending(Status.UNAVAILABLE, "requête 5").getTrailers().get(GatewayStatus.REQUEST_ID))
                .isNull();
        assertThat(GatewayStatus.ending(Status.UNAVAILABLE, "").getTrailers().get(GatewayStatus.REQUEST_ID)).isNull();
    }

    @Test
    void anInternalFailureOfACallWithoutRequestId_namesTheCall_notARequestId() {
        Status s = GatewayStatus.ofCall(new NullPointerException("boom"), "Tokenize");
        assertThat(s.getCode()).isEqualTo(Status.Code.INTERNAL);
        assertThat(s.getDescription()).isEqualTo("internal error in Tokenize; the gateway's log has the details");

        // A caller's mistake keeps its own status and message.
        Status bad = GatewayStatus.ofCall(new IllegalArgumentException("text: must not be empty"), "Tokenize");
        assertThat(bad.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(bad.getDescription()).contains("text: must not be empty");
    }
}
