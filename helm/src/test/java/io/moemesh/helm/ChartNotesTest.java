package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;

import io.kubernetes.client.openapi.models.V1Service;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * What the install prints (NOTES.txt, rendered by {@code helm install --dry-run=server} against an empty
 * {@link FakeKubernetesApi}: {@code helm template} renders no NOTES), and how the documented value sets expose the
 * gateway, whose HTTP and gRPC ports are plaintext.
 */
class ChartNotesTest {
    private static final String CURL = "curl -N http://127.0.0.1:8080/v1/completions";

    private static String notes(Map<String, String> values) {
        try (FakeKubernetesApi api = FakeKubernetesApi.withoutRelease()) {
            String output = Chart.installDryRun(Chart.DIR, values, api);
            assertThat(output).contains("NOTES:");
            return output.substring(output.indexOf("NOTES:"));
        }
    }

    /** A curl without the key would get 401; the key is typed, never printed, and never put in the NOTES. */
    @Test
    void notesWithApiKeys_curlSendsABearerKey_readWithoutEchoFromTheNamedSecret() {
        String notes = notes(Map.of("gateway.apiKeys.existingSecret", "moemesh-api-keys"));
        assertThat(notes).contains("read -rs KEY", "Secret moemesh-api-keys (its key api-keys",
                CURL + " -H \"Authorization: Bearer $KEY\"");
    }

    @Test
    void notesWithoutApiKeys_curlSendsNoAuthorization() {
        String notes = notes(Map.of());
        assertThat(notes).contains(CURL + " -H 'Content-Type: application/json'")
                .doesNotContain("Authorization", "read -rs");
    }

    @ParameterizedTest
    @ValueSource(strings = {"LoadBalancer", "NodePort"})
    void notesOfAGatewayServiceOutsideTheCluster_warnThatItsKeysCrossTheNetworkInCleartext(String type) {
        assertThat(notes(Map.of("gateway.service.type", type, "gateway.apiKeys.existingSecret", "keys")))
                .contains("WARNING: gateway.service.type=" + type, "every API key (Authorization: Bearer)",
                        "in cleartext", "Traffic from outside the cluster");
        assertThat(notes(Map.of("gateway.service.type", type))).contains("WARNING: gateway.service.type=" + type,
                "anyone who reaches them can use the API");
        assertThat(notes(Map.of("gateway.apiKeys.existingSecret", "keys"))).doesNotContain("gateway.service.type=");
    }

    static List<Chart.ValueSet> valueSets() {
        return Chart.valueSets();
    }

    /** No documented value set shows the gateway's plaintext ports to the network with bearer keys on them. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void noDocumentedValueSet_exposesTheGatewaysPlaintextPorts_withApiKeys(Chart.ValueSet set) {
        Map<String, Object> values = Chart.values(set);
        Object keys = Chart.value(values, "gateway.apiKeys.existingSecret");
        V1Service gateway = Chart.render(set).one(V1Service.class, Chart.RELEASE + "-gateway");
        if (keys != null && !keys.toString().isEmpty()) {
            assertThat(gateway.getSpec().getType()).as("gateway Service of %s", set).isEqualTo("ClusterIP");
        }
    }
}
