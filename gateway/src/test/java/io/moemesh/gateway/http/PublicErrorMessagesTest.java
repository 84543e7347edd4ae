package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.gateway.dispatch.ExpertUnavailableException;
import io.moemesh.gateway.dispatch.NoPlacementException;
import io.moemesh.model.engine.RemoteAttentionException;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * A 503's error JSON says what failed in general terms: the kvcache-service's endpoint (a socket path under someone's
 * home), the sequences of the failed step (other tenants' among them), an expert's instances and the placement's
 * epoch, and the router's address stay in the log, under the request id.
 */
class PublicErrorMessagesTest {

    @SuppressWarnings("unchecked")
    private static Map<String, Object> error(Throwable t) {
        var r = OpenAiErrors.of(t, "req-7");
        assertThat(r.getStatusCode().value()).isEqualTo(503);
        assertThat(r.getHeaders().getFirst("Retry-After")).isEqualTo("1");
        return (Map<String, Object>) r.getBody().get("error");
    }

    @Test
    void attendFailure_saysTheKvCacheServiceFailed_withoutItsEndpointOrOtherSequences() {
        Map<String, Object> e = error(new RemoteAttentionException("layer 2: remote attention over the prefixes of "
                + "sequences [3, 9] failed: Attend of sequence 9 at the kvcache-service "
                + "unix:///home/alice/.moemesh/sockets/kvcache.sock failed: UNAVAILABLE", null));
        assertThat(e.get("message")).isEqualTo("the KV-cache service failed to attend this request's offloaded prefix; "
                + "retry");
        assertThat(e.get("code")).isEqualTo("kvcache_unavailable");
        assertThat(e.toString()).doesNotContain("/home/alice", "kvcache.sock", "9", "3");
    }

    @Test
    void expertWithoutAHealthyReplica_namesTheExpert_notItsInstancesNorTheEpoch() {
        Map<String, Object> e = error(new ExpertUnavailableException("layer 1 expert 2 has no healthy replica (placed "
                + "on expert-pod-7f9c, expert-pod-aa01, epoch 12)", "layer 1 expert 2 has no healthy replica; retry",
                null));
        assertThat(e.get("message")).isEqualTo("layer 1 expert 2 has no healthy replica; retry");
        assertThat(e.get("code")).isEqualTo("no_healthy_experts");
    }

    @Test
    void noPlacementYet_withoutTheRoutersAddress() {
        Map<String, Object> e = error(new NoPlacementException("no expert placement yet: waiting for the router at "
                + "router.internal:9100"));
        assertThat(e.get("message")).asString().startsWith("no expert placement yet").doesNotContain("router.internal");
        assertThat(e.get("code")).isEqualTo("no_placement");
    }
}
