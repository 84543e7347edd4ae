package io.moemesh.gateway.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import io.moemesh.model.engine.RemoteAttentionException;
import org.junit.jupiter.api.Test;

/** The gateway's exception → Status mapping for the data path's own failures. */
class GatewayStatusTest {

    @Test
    void aRemoteAttentionFailure_isUnavailable_withItsMessage_neverInternal() {
        Status s = GatewayStatus.of(new RemoteAttentionException("layer 2: remote attention over the prefixes of "
                + "sequences [7] failed: Attend of sequence 7 at the kvcache-service h:1 failed: UNAVAILABLE",
                new IllegalStateException("cause")), "req-1");
        assertThat(s.getCode()).isEqualTo(Status.Code.UNAVAILABLE);
        assertThat(s.getDescription()).contains("kvcache-service h:1", "UNAVAILABLE").doesNotContain("Exception");
    }
}
