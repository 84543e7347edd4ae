package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;

import io.kubernetes.client.openapi.models.V1Container;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
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

    /**
     * With tls.caBundle.configMap every service trusts that one ConfigMap's certificates (the old and the new CA while
     * the CA is rotated), mounted whole so that the kubelet's updates reach the services' re-reads, instead of the
     * ca.crt of its own Secret, which cert-manager writes per certificate and holds only the CA of that issue.
     */
    @Test
    void caBundleConfigMap_isWhatEveryServiceTrusts_insteadOfItsOwnSecretsCaCrt() {
        Chart.ValueSet certManager = new Chart.ValueSet("cert-manager", Path.of("moemesh/ci/cert-manager-values.yaml"));
        RenderedChart chart = RenderedChart.parse(Chart.template(certManager,
                Map.of("tls.caBundle.configMap", "mesh-ca", "tls.caBundle.key", "bundle.pem")));
        assertThat(chart.workloads()).hasSize(4);
        for (RenderedChart.Workload w : chart.workloads()) {
            assertThat(w.template().getSpec().getVolumes()).as(w.name())
                    .anySatisfy(v -> {
                        assertThat(v.getName()).isEqualTo("ca-bundle");
                        assertThat(v.getConfigMap().getName()).isEqualTo("mesh-ca");
                        assertThat(v.getConfigMap().getItems()).singleElement().satisfies(i -> {
                            assertThat(i.getKey()).isEqualTo("bundle.pem");
                            assertThat(i.getPath()).isEqualTo("ca-bundle.crt");
                        });
                    });
            V1Container main = w.template().getSpec().getContainers().getFirst();
            assertThat(main.getVolumeMounts()).as(w.name()).anySatisfy(m -> {
                assertThat(m.getName()).isEqualTo("ca-bundle");
                assertThat(m.getMountPath()).isEqualTo("/etc/moemesh/ca-bundle");
                assertThat(m.getSubPath()).as("no subPath: the kubelet updates the file").isNull();
            });
            assertThat(ContainerEnvironment.of(chart, main)).as(w.name())
                    .hasEntrySatisfying(caBundleVariable(w), v -> assertThat(v)
                            .isEqualTo("/etc/moemesh/ca-bundle/ca-bundle.crt"));
        }

        RenderedChart perSecret = Chart.render(certManager);
        for (RenderedChart.Workload w : perSecret.workloads()) {
            assertThat(w.template().getSpec().getVolumes()).as(w.name()).noneMatch(v -> v.getName().equals("ca-bundle"));
            assertThat(ContainerEnvironment.of(perSecret, w.template().getSpec().getContainers().getFirst()))
                    .containsEntry(caBundleVariable(w), "/etc/moemesh/tls/ca.crt");
        }
    }

    private static String caBundleVariable(RenderedChart.Workload w) {
        String component = w.name().substring(Chart.RELEASE.length() + 1);
        return "MOEMESH_" + (component.equals("expert-service") ? "EXPERT" : component.toUpperCase(Locale.ROOT))
                + "_TLS_CA_BUNDLE";
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
