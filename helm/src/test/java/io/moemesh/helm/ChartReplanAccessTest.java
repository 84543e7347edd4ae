package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;

import io.kubernetes.client.openapi.models.V1ConfigMap;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * With the default autoReplanPeriod 0s only a Replan call re-plans the mesh, and the router takes it only from its
 * operator identities (moemesh.router.operator-identities; everyone else gets PERMISSION_DENIED). So the chart sets
 * who they are, and with cert-manager can issue the certificate {@code moemesh router replan} calls with: the
 * identity {@code placer}, client auth only.
 */
class ChartReplanAccessTest {
    private static final String ROUTER = Chart.RELEASE + "-router";

    @TempDir
    Path scratch;

    /** router.operatorIdentities as a values file gives it, and the identities the router must bind from it. */
    static Stream<Arguments> operatorIdentities() {
        return Stream.of(
                Arguments.of(null, "placer", Set.of("placer")), // the default
                Arguments.of("[placer, ops.team-1]", "placer,ops.team-1", Set.of("placer", "ops.team-1")),
                Arguments.of("[]", "", Set.of())); // nobody may re-plan (with mutual TLS)
    }

    @ParameterizedTest(name = "{0} -> {1}")
    @MethodSource("operatorIdentities")
    void operatorIdentities_areWhoTheRouterLetsReplan(String yaml, String variable, Set<String> identities)
            throws Exception {
        Chart.ValueSet set = yaml == null ? Chart.valueSets().getFirst()
                : new Chart.ValueSet("operators " + yaml, Files.writeString(scratch.resolve("operators-values.yaml"),
                "router:\n  operatorIdentities: " + yaml + "\n"));
        RenderedChart chart = Chart.render(set);
        assertThat(chart.one(V1ConfigMap.class, ROUTER).getData())
                .containsEntry("MOEMESH_ROUTER_OPERATOR_IDENTITIES", variable);
        RenderedChart.Workload router = chart.workloads().stream().filter(w -> w.name().equals(ROUTER)).findFirst()
                .orElseThrow();
        ServiceSettings.Bound bound = ServiceSettings.forContainer("router").bind(ContainerEnvironment.of(chart,
                router.template().getSpec(), router.template().getSpec().getContainers().getFirst(),
                Files.createTempDirectory(scratch, "router-")));
        assertThat(bound.errors()).isEmpty();
        assertThat(bound.settings().getClass().getMethod("operatorIdentities").invoke(bound.settings()))
                .isEqualTo(identities);
    }

    @Test
    @SuppressWarnings("unchecked")
    void placerCertificate_withCertManager_issuesTheIdentityPlacer_forClientAuthOnly() {
        RenderedChart chart = RenderedChart.parse(Chart.template(new Chart.ValueSet("cert-manager",
                Path.of("moemesh/ci/cert-manager-values.yaml")), Map.of("router.placerCertificate.enabled", "true")));
        assertThat(chart.customResources()).hasSize(5);
        Map<String, Object> placer = chart.customResources().stream()
                .filter(c -> "placer".equals(((Map<String, Object>) c.get("spec")).get("commonName")))
                .findFirst().orElseThrow();
        assertThat((Map<String, Object>) placer.get("metadata")).containsEntry("name", Chart.RELEASE + "-placer");
        Map<String, Object> spec = (Map<String, Object>) placer.get("spec");
        assertThat((List<String>) spec.get("uris")).containsExactly("spiffe://moemesh/placer");
        assertThat(spec.get("secretName")).isEqualTo(Chart.RELEASE + "-placer-tls");
        assertThat((Map<String, Object>) spec.get("privateKey")).containsEntry("encoding", "PKCS8");
        assertThat((List<String>) spec.get("usages")).contains("client auth").doesNotContain("server auth");
        assertThat((Map<String, Object>) spec.get("issuerRef")).containsEntry("name", "moemesh-mesh-ca");
        // Nothing mounts it: it is for operators, outside the mesh's pods.
        assertThat(chart.workloads()).allSatisfy(w -> assertThat(w.template().getSpec().getVolumes())
                .noneMatch(v -> v.getSecret() != null
                        && (Chart.RELEASE + "-placer-tls").equals(v.getSecret().getSecretName())));
    }
}
