package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;

import io.kubernetes.client.openapi.models.V1PodReadinessGate;
import io.kubernetes.client.openapi.models.V1PolicyRule;
import io.kubernetes.client.openapi.models.V1Role;
import io.kubernetes.client.openapi.models.V1StatefulSet;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The expert-service pods' readiness gate (Kubernetes pod readiness gates,
 * https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-readiness-gate): a pod is Ready only once the
 * router has placed experts on it, so a rolling update or a node drain waits for the re-placement. It takes three
 * things together, or none: the gate in the pod template, the router setting the condition, and the router's Role
 * allowing it to patch pod status. A gate the router does not set would keep every expert pod unready for ever.
 */
class ChartReadinessGateTest {
    private static final String EXPERTS = Chart.RELEASE + "-expert-service";
    private static final String ROUTER = Chart.RELEASE + "-router";
    private static final V1PolicyRule PATCH_POD_STATUS = new V1PolicyRule().apiGroups(List.of(""))
            .resources(List.of("pods/status")).verbs(List.of("patch"));

    @TempDir
    Path scratch;

    static List<Chart.ValueSet> valueSets() {
        return Chart.valueSets();
    }

    /** Whether the router container, as the chart configures it, binds discovery.readiness-gate on. */
    boolean routerSetsTheCondition(RenderedChart chart) throws Exception {
        RenderedChart.Workload router = chart.workloads().stream().filter(w -> w.name().equals(ROUTER)).findFirst()
                .orElseThrow();
        ServiceSettings.Bound bound = ServiceSettings.forContainer("router").bind(ContainerEnvironment.of(chart,
                router.template().getSpec(), router.template().getSpec().getContainers().getFirst(),
                Files.createTempDirectory(scratch, "router-")));
        assertThat(bound.errors()).isEmpty();
        Object discovery = bound.settings().getClass().getMethod("discovery").invoke(bound.settings());
        return (Boolean) discovery.getClass().getMethod("readinessGate").invoke(discovery);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void expertPods_waitForTheRoutersPlacedCondition_whichTheRouterSets_andMayPatch(Chart.ValueSet set)
            throws Exception {
        RenderedChart chart = Chart.render(set);
        assertThat(chart.one(V1StatefulSet.class, EXPERTS).getSpec().getTemplate().getSpec().getReadinessGates())
                .containsExactly(new V1PodReadinessGate().conditionType("moemesh.io/placed"));
        assertThat(routerSetsTheCondition(chart)).isTrue();
        assertThat(chart.one(V1Role.class, ROUTER).getRules()).contains(PATCH_POD_STATUS);
    }

    @Test
    void readinessGateOff_noGate_theRouterSetsNoCondition_andMayNotPatchPodStatus() throws Exception {
        RenderedChart chart = RenderedChart.parse(Chart.template(Chart.valueSets().getFirst(),
                Map.of("expertService.readinessGate.enabled", "false")));
        assertThat(chart.one(V1StatefulSet.class, EXPERTS).getSpec().getTemplate().getSpec().getReadinessGates())
                .isNullOrEmpty();
        assertThat(routerSetsTheCondition(chart)).isFalse();
        assertThat(chart.one(V1Role.class, ROUTER).getRules()).doesNotContain(PATCH_POD_STATUS)
                .noneMatch(r -> r.getResources().contains("pods/status"));
    }
}
