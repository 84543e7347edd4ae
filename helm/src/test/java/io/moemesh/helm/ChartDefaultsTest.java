package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;

import io.kubernetes.client.openapi.models.V1ConfigMap;
import io.kubernetes.client.openapi.models.V1Deployment;
import io.kubernetes.client.openapi.models.V1PersistentVolumeClaim;
import io.kubernetes.client.openapi.models.V1PodDisruptionBudget;
import io.kubernetes.client.openapi.models.V1Role;
import io.kubernetes.client.openapi.models.V1RoleBinding;
import io.kubernetes.client.openapi.models.V1ServiceAccount;
import io.kubernetes.client.openapi.models.V1StatefulSet;
import io.kubernetes.client.openapi.models.V2HorizontalPodAutoscaler;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** A plain {@code helm template} with the chart's defaults renders the whole production shape. */
class ChartDefaultsTest {
    private static RenderedChart chart;

    @BeforeAll
    static void render() {
        chart = Chart.render(Chart.valueSets().getFirst());
    }

    @Test
    void defaults_renderAllFourWorkloads_gatewayAndRouterAsDeployments_expertsAndKvcacheAsStatefulSets() {
        assertThat(chart.all(V1Deployment.class)).extracting(d -> d.getMetadata().getName())
                .containsExactlyInAnyOrder("moemesh-gateway", "moemesh-router");
        assertThat(chart.all(V1StatefulSet.class)).extracting(s -> s.getMetadata().getName())
                .containsExactlyInAnyOrder("moemesh-expert-service", "moemesh-kvcache");
    }

    /** The router's discovery reads these from each expert pod (docs/kubernetes.md) into the placement. */
    @Test
    void defaults_annotateExpertPods_withDeviceGpusAndMemoryBudget_forTheRoutersDiscovery() {
        V1StatefulSet experts = chart.all(V1StatefulSet.class).stream()
                .filter(s -> s.getMetadata().getName().equals("moemesh-expert-service")).findFirst().orElseThrow();
        assertThat(experts.getSpec().getTemplate().getMetadata().getAnnotations())
                .containsEntry("moemesh.io/device", "gpu").containsEntry("moemesh.io/gpus", "1")
                .containsEntry("moemesh.io/memory-budget-bytes", "8589934592");
    }

    /**
     * The HPA controller scales no workload down while one of its HPA's metrics cannot be read (it only scales up
     * then): a Pods metric without the Prometheus Adapter would keep the defaults from ever scaling in. So the
     * defaults scale on CPU (the metrics-server's resource metrics) alone.
     */
    @Test
    void defaults_renderHpasForGatewayAndExperts_onCpuAlone_soTheyScaleInWithoutAMetricsAdapter() {
        assertThat(chart.all(V2HorizontalPodAutoscaler.class))
                .extracting(h -> h.getSpec().getScaleTargetRef().getName())
                .containsExactlyInAnyOrder("moemesh-gateway", "moemesh-expert-service");
        for (V2HorizontalPodAutoscaler hpa : chart.all(V2HorizontalPodAutoscaler.class)) {
            assertThat(hpa.getSpec().getMetrics()).singleElement().satisfies(m -> {
                assertThat(m.getType()).isEqualTo("Resource");
                assertThat(m.getResource().getName()).isEqualTo("cpu");
            });
        }
        // The HPA owns the pod count: a first install (what helm template shows: lookup finds nothing) leaves it to
        // the HPA; an upgrade keeps the live count instead (ChartUpgradeLookupTest).
        assertThat(chart.one(V1Deployment.class, "moemesh-gateway").getSpec().getReplicas()).isNull();
        assertThat(chart.one(V1StatefulSet.class, "moemesh-expert-service").getSpec().getReplicas()).isNull();
    }

    /** With the adapter (docs/kubernetes.md), each HPA also scales on its serving metric, a Pods metric. */
    @Test
    void servingMetricsOn_addEachHpasPodsMetric_besideCpu() {
        RenderedChart withMetrics = RenderedChart.parse(Chart.template(Chart.valueSets().getFirst(), Map.of(
                "gateway.autoscaling.servingMetric.enabled", "true",
                "expertService.autoscaling.servingMetric.enabled", "true")));
        for (V2HorizontalPodAutoscaler hpa : withMetrics.all(V2HorizontalPodAutoscaler.class)) {
            assertThat(hpa.getSpec().getMetrics()).extracting(m -> m.getType()).containsExactly("Resource", "Pods");
        }
        assertThat(withMetrics.one(V2HorizontalPodAutoscaler.class, "moemesh-gateway").getSpec().getMetrics().get(1)
                .getPods().getMetric().getName()).isEqualTo("moemesh_gateway_sequences_waiting");
        assertThat(withMetrics.one(V2HorizontalPodAutoscaler.class, "moemesh-expert-service").getSpec().getMetrics()
                .get(1).getPods().getMetric().getName()).isEqualTo("moemesh_expert_inflight_batches");
    }

    /** No PDB for the single kvcache pod: it could not keep it up (ChartDisruptionBudgetTest). */
    @Test
    void defaults_renderPdbs_routerRbac_andThePlacementConfigMap() {
        assertThat(chart.all(V1PodDisruptionBudget.class)).extracting(p -> p.getMetadata().getName())
                .containsExactlyInAnyOrder("moemesh-gateway", "moemesh-expert-service");
        assertThat(chart.all(V1ServiceAccount.class)).extracting(a -> a.getMetadata().getName())
                .containsExactly("moemesh-router");
        assertThat(chart.all(V1Role.class)).hasSize(1);
        assertThat(chart.all(V1RoleBinding.class)).hasSize(1);
        assertThat(chart.find(V1ConfigMap.class, "moemesh-placement")).isPresent();
    }

    @Test
    void defaults_giveKvcacheItsSsdVolume_asAVolumeClaimTemplate_mountedWhereTheServiceWritesIt() {
        V1StatefulSet kvcache = chart.one(V1StatefulSet.class, "moemesh-kvcache");
        assertThat(kvcache.getSpec().getVolumeClaimTemplates()).singleElement().satisfies(pvc -> {
            V1PersistentVolumeClaim claim = pvc;
            assertThat(claim.getMetadata().getName()).isEqualTo("ssd");
            assertThat(claim.getSpec().getResources().getRequests()).containsKey("storage");
        });
        Map<String, String> settings = chart.one(V1ConfigMap.class, "moemesh-kvcache").getData();
        assertThat(kvcache.getSpec().getTemplate().getSpec().getContainers().getFirst().getVolumeMounts())
                .anySatisfy(m -> {
                    assertThat(m.getName()).isEqualTo("ssd");
                    assertThat(m.getMountPath()).isEqualTo(settings.get("MOEMESH_KVCACHE_SSD_DIR"));
                });
        assertThat(chart.one(V1ConfigMap.class, "moemesh-gateway").getData())
                .containsEntry("MOEMESH_GATEWAY_KVCACHE_ENDPOINT", "moemesh-kvcache:9400");
    }

    @Test
    void defaults_runEveryServiceWithMutualTls_fromItsComponentsSecret() {
        for (String component : new String[]{"gateway", "router", "expert-service", "kvcache"}) {
            assertThat(chart.workloads()).filteredOn(w -> w.name().equals("moemesh-" + component)).singleElement()
                    .satisfies(w -> assertThat(w.template().getSpec().getVolumes()).anySatisfy(v -> {
                        assertThat(v.getName()).isEqualTo("tls");
                        assertThat(v.getSecret().getSecretName()).isEqualTo("moemesh-" + component + "-tls");
                    }));
        }
        assertThat(chart.one(V1ConfigMap.class, "moemesh-expert-service").getData())
                .containsEntry("MOEMESH_EXPERT_TLS_MODE", "mtls")
                .containsEntry("MOEMESH_EXPERT_PLACER_IDENTITIES", "router");
    }
}
