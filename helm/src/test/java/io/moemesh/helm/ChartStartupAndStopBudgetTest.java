package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;

import io.kubernetes.client.openapi.models.V1Container;
import io.kubernetes.client.openapi.models.V1Probe;
import java.util.HashMap;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The kubelet's limits must outlast what the services do before they answer and before they exit: a kvcache pod
 * killed mid-scan of its SSD tier scans again on the next start (a crash loop), a gateway killed mid-drain loses its
 * in-flight requests and its queued KV write-backs.
 */
class ChartStartupAndStopBudgetTest {

    private static final Chart.ValueSet DEFAULTS = Chart.valueSets().getFirst();
    /** The slowest SSD volume the chart assumes, bytes per second. */
    private static final double READ_RATE = 100e6;

    /** Settings of the SSD tier, and the bytes of segment files a starting kvcache-service may have to read. */
    static Stream<Arguments> ssdTiers() {
        return Stream.of(
                Arguments.of(Map.of(), 90e9), // the defaults: 45 GB ÷ 0.5
                Arguments.of(Map.of("kvcache.ssdBytes", "200000000000", "kvcache.persistence.size", "500Gi"), 400e9),
                Arguments.of(Map.of("kvcache.ssdBytes", "20000000000",
                        "kvcache.env.MOEMESH_KVCACHE_COMPACTION_LIVE_FRACTION", "0.25"), 80e9),
                // the fraction under another spelling Spring reads
                Arguments.of(Map.of("kvcache.ssdBytes", "20000000000",
                        "kvcache.env.MOEMESH_KVCACHE_COMPACTIONLIVEFRACTION", "0.25"), 80e9),
                // compaction off: the files may fill the volume
                Arguments.of(Map.of("kvcache.env.MOEMESH_KVCACHE_COMPACTION_LIVE_FRACTION", "0"),
                        100.0 * (1L << 30)));
    }

    @ParameterizedTest(name = "{0} -> {1} bytes")
    @MethodSource("ssdTiers")
    void kvcacheStartupProbe_outlastsReadingTheSsdTierAt100MBps(Map<String, String> overrides, double scanBytes) {
        V1Probe startup = kvcache(Chart.template(DEFAULTS, overrides)).getStartupProbe();
        long budget = (long) startup.getFailureThreshold() * startup.getPeriodSeconds();
        assertThat(budget).isGreaterThanOrEqualTo((long) Math.ceil(scanBytes / READ_RATE) + 60);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("ssdTiers")
    void kvcacheStartupProbeSeconds_overridesTheDerivedBudget(Map<String, String> overrides) {
        Map<String, String> withOverride = new HashMap<>(overrides);
        withOverride.put("kvcache.startupProbeSeconds", "7200");
        V1Probe startup = kvcache(Chart.template(DEFAULTS, withOverride)).getStartupProbe();
        assertThat((long) startup.getFailureThreshold() * startup.getPeriodSeconds()).isEqualTo(7200);
    }

    /**
     * The gateway's terminationGracePeriodSeconds is its preStop plus its whole stop: shutdown-grace, the drain's
     * 5 s stop wait, the KV write-back drain timeout (10 s unless gateway.env sets it, under any spelling Spring
     * reads) and 15 s to exit: MeshShutdown.gatewayStopGrace of the CLI, plus preStop.
     */
    static Stream<Arguments> gatewayStops() {
        return Stream.of(
                Arguments.of(Map.of(), 10 + 30 + 5 + 10 + 15),
                Arguments.of(Map.of("gateway.drain.preStopSeconds", "0", "gateway.drain.shutdownGraceSeconds", "5"),
                        5 + 5 + 10 + 15),
                Arguments.of(Map.of("gateway.env.MOEMESH_GATEWAY_KVCACHE_DRAIN_TIMEOUT", "1m"), 10 + 30 + 5 + 60 + 15),
                Arguments.of(Map.of("gateway.env.MOEMESH_GATEWAY_KVCACHE_DRAINTIMEOUT", "PT45S"),
                        10 + 30 + 5 + 45 + 15),
                Arguments.of(Map.of("gateway.env.moemesh_gateway_kvcache_drain_timeout", "30001"), // ms, rounded up
                        10 + 30 + 5 + 31 + 15),
                Arguments.of(Map.of("gateway.env.MOEMESH_GATEWAY_KVCACHE_DRAIN_TIMEOUT", "0s"), 10 + 30 + 5 + 15));
    }

    @ParameterizedTest(name = "{0} -> {1} s")
    @MethodSource("gatewayStops")
    void gatewayTerminationGrace_coversPreStopShutdownGraceStopWaitWriteBackDrainAndExit(
            Map<String, String> overrides, int expectedSeconds) {
        RenderedChart chart = RenderedChart.parse(Chart.template(DEFAULTS, overrides));
        RenderedChart.Workload gateway = chart.workloads().stream()
                .filter(w -> w.name().equals(Chart.RELEASE + "-gateway")).findFirst().orElseThrow();
        assertThat(gateway.template().getSpec().getTerminationGracePeriodSeconds()).isEqualTo(expectedSeconds);
    }

    private static V1Container kvcache(String manifests) {
        return RenderedChart.parse(manifests).workloads().stream()
                .filter(w -> w.name().equals(Chart.RELEASE + "-kvcache")).findFirst().orElseThrow()
                .template().getSpec().getContainers().getFirst();
    }
}
