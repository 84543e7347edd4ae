package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;

import io.kubernetes.client.openapi.models.V1Container;
import io.kubernetes.client.openapi.models.V1Deployment;
import io.kubernetes.client.openapi.models.V1StatefulSet;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A rolling update (and a scale step) moves on once a new pod is available: Ready for the workload's
 * minReadySeconds. Without the readiness gate (ChartReadinessGateTest) an expert-service pod is Ready before it holds
 * any expert, so without the wait the StatefulSet would replace the next pod while the router still re-places the
 * experts of the last one (with the gate the wait is a margin); a gateway is Ready before load balancers route to it.
 */
class ChartRolloutPacingTest {
    private static final String EXPERTS = Chart.RELEASE + "-expert-service";
    private static final String GATEWAY = Chart.RELEASE + "-gateway";
    private static final String ROUTER = Chart.RELEASE + "-router";

    @TempDir
    Path scratch;

    static List<Chart.ValueSet> valueSets() {
        return Chart.valueSets();
    }

    /**
     * The router publishes an epoch with a new pod only after the ready set stayed unchanged for its settle time and
     * every pod loaded its share, which it waits for at most its load-timeout: the expert pods' minReadySeconds
     * covers both, as the router's container binds them (its application.yaml under the chart's environment).
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void expertPods_stayReadyForTheRoutersSettleTimeAndLoadTimeout_beforeTheRolloutMovesOn(Chart.ValueSet set)
            throws Exception {
        RenderedChart chart = Chart.render(set);
        RenderedChart.Workload router = chart.workloads().stream().filter(w -> w.name().equals(ROUTER))
                .findFirst().orElseThrow();
        V1Container container = router.template().getSpec().getContainers().getFirst();
        Object settings = ServiceSettings.forContainer("router").bind(ContainerEnvironment.of(chart,
                router.template().getSpec(), container, Files.createTempDirectory(scratch, "router-"))).settings();
        Duration loadTimeout = (Duration) settings.getClass().getMethod("loadTimeout").invoke(settings);
        Object discovery = settings.getClass().getMethod("discovery").invoke(settings);
        Duration settleTime = (Duration) discovery.getClass().getMethod("settleTime").invoke(discovery);

        Integer minReady = chart.one(V1StatefulSet.class, EXPERTS).getSpec().getMinReadySeconds();
        assertThat(minReady).as("expert-service minReadySeconds").isNotNull();
        assertThat(Duration.ofSeconds(minReady)).isGreaterThanOrEqualTo(settleTime.plus(loadTimeout));
    }

    /** Load balancers learn of a new gateway's endpoint while it waits, as preStop lets them forget a leaving one. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void gatewayPods_stayReadyForEndpointPropagation_beforeAnOldOneDrains(Chart.ValueSet set) {
        Integer minReady = Chart.render(set).one(V1Deployment.class, GATEWAY).getSpec().getMinReadySeconds();
        assertThat(minReady).as("gateway minReadySeconds").isNotNull()
                .isEqualTo(((Number) Chart.value(Chart.values(set), "gateway.minReadySeconds")).intValue())
                .isPositive();
    }

    @Test
    void minReadySeconds_setInTheValues_isWhatTheWorkloadsGet() {
        RenderedChart chart = RenderedChart.parse(Chart.template(Chart.valueSets().getFirst(),
                Map.of("expertService.minReadySeconds", "300", "gateway.minReadySeconds", "0")));
        assertThat(chart.one(V1StatefulSet.class, EXPERTS).getSpec().getMinReadySeconds()).isEqualTo(300);
        assertThat(chart.one(V1Deployment.class, GATEWAY).getSpec().getMinReadySeconds()).isZero();
    }
}
