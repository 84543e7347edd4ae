package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** tls.certManager.enabled renders one Certificate per mesh identity, in the form the services read. */
class ChartCertificatesTest {

    @Test
    @SuppressWarnings("unchecked")
    void certManager_issuesOneCertificatePerIdentity_withItsSpiffeUri_pkcs8Key_andBothAuthUsages() {
        RenderedChart chart = Chart.render(new Chart.ValueSet("cert-manager",
                Path.of("moemesh/ci/cert-manager-values.yaml")));
        assertThat(chart.customResources()).hasSize(4);
        for (Map<String, Object> certificate : chart.customResources()) {
            assertThat(certificate).containsEntry("kind", "Certificate");
            Map<String, Object> spec = (Map<String, Object>) certificate.get("spec");
            String identity = (String) spec.get("commonName");
            assertThat(identity).isIn("gateway", "router", "expert-service", "kvcache");
            assertThat((List<String>) spec.get("uris")).containsExactly("spiffe://moemesh/" + identity);
            assertThat(spec.get("secretName")).isEqualTo("moemesh-" + identity + "-tls");
            assertThat((Map<String, Object>) spec.get("privateKey")).containsEntry("encoding", "PKCS8");
            assertThat((List<String>) spec.get("usages")).contains("server auth", "client auth");
            assertThat((Map<String, Object>) spec.get("issuerRef")).containsEntry("name", "moemesh-mesh-ca")
                    .containsEntry("kind", "ClusterIssuer");
        }
    }

    @Test
    void plaintext_mountsNoCertificates_andTellsEveryServiceSo() {
        RenderedChart chart = Chart.render(new Chart.ValueSet("trial",
                Path.of("moemesh/ci/trial-cpu-plaintext-values.yaml")));
        assertThat(chart.customResources()).isEmpty();
        for (RenderedChart.Workload w : chart.workloads()) {
            assertThat(w.template().getSpec().getVolumes()).as(w.name()).noneMatch(v -> v.getName().equals("tls"));
        }
        assertThat(chart.all(io.kubernetes.client.openapi.models.V1ConfigMap.class))
                .filteredOn(c -> c.getData() != null && !c.getData().isEmpty())
                .allSatisfy(c -> assertThat(c.getData().entrySet())
                        .anySatisfy(e -> {
                            assertThat(e.getKey()).endsWith("_TLS_MODE");
                            assertThat(e.getValue()).isEqualTo("plaintext");
                        }));
    }
}
