package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.kubernetes.client.openapi.models.V1ConfigMap;
import io.kubernetes.client.openapi.models.V1Container;
import io.kubernetes.client.openapi.models.V1Probe;
import java.io.IOException;
import java.nio.file.Files;
import java.util.HashMap;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.yaml.snakeyaml.Yaml;

/**
 * The kubelet's limits must outlast what the services do before they answer and before they exit: a kvcache pod
 * killed mid-scan of its SSD tier scans again on the next start (a crash loop), one killed while it writes its DRAM
 * tier to SSD loses those blocks, a gateway killed mid-drain loses its in-flight requests and its queued KV
 * write-backs, a router killed within its shutdown grace its in-flight calls and its last route snapshot.
 */
class ChartStartupAndStopBudgetTest {

    private static final Chart.ValueSet DEFAULTS = Chart.valueSets().getFirst();
    /** The slowest SSD volume the chart assumes, bytes per second. */
    private static final double READ_RATE = 100e6;
    /** Seconds the chart gives the JVM, Spring and the model's config on top of the scan. */
    private static final long STARTUP_MARGIN = 120;

    /** The DRAM tier and one SSD segment, the service's defaults (4 GiB, 256 MiB). */
    private static final double DRAM = 4294967296.0;
    private static final double SEGMENT = 268435456.0;
    private static final double GiB = 1L << 30;

    /**
     * Settings of the SSD tier, and the bytes of segment files a starting kvcache-service may have to read when the
     * values have not changed since they were written: the sealed segments (ssdBytes ÷ the compaction live
     * fraction), the DRAM tier the last stop demoted to SSD and the segment being written; the whole volume when
     * compaction is off.
     */
    static Stream<Arguments> ssdTiers() {
        return Stream.of(
                Arguments.of(Map.of(), 90e9 + DRAM + SEGMENT), // the defaults: 45 GB ÷ 0.5
                Arguments.of(Map.of("kvcache.ssdBytes", "200000000000", "kvcache.persistence.size", "500Gi"),
                        400e9 + DRAM + SEGMENT),
                Arguments.of(Map.of("kvcache.ssdBytes", "20000000000",
                        "kvcache.env.MOEMESH_KVCACHE_COMPACTION_LIVE_FRACTION", "0.25"), 80e9 + DRAM + SEGMENT),
                // the fraction under another spelling Spring reads
                Arguments.of(Map.of("kvcache.ssdBytes", "20000000000",
                        "kvcache.env.MOEMESH_KVCACHE_COMPACTIONLIVEFRACTION", "0.25"), 80e9 + DRAM + SEGMENT),
                // a stop demotes the whole DRAM tier: 16 GiB more to read at the next start
                Arguments.of(Map.of("kvcache.dramBytes", "17179869184", "kvcache.ssdBytes", "40000000000",
                        "kvcache.resources.limits.memory", "24Gi"), 80e9 + 16 * GiB + SEGMENT),
                Arguments.of(Map.of("kvcache.env.MOEMESH_KVCACHE_SEGMENT_BYTES", "4294967296"), 90e9 + DRAM + 4 * GiB),
                // compaction off: the files may fill the volume
                Arguments.of(Map.of("kvcache.env.MOEMESH_KVCACHE_COMPACTION_LIVE_FRACTION", "0"), 100 * GiB),
                // ... also when it never runs (KvCacheBackground schedules nothing), in any form Spring reads
                Arguments.of(Map.of("kvcache.env.MOEMESH_KVCACHE_COMPACTION_PERIOD", "0"), 100 * GiB),
                Arguments.of(Map.of("kvcache.env.MOEMESH_KVCACHE_COMPACTIONPERIOD", "PT0S"), 100 * GiB),
                Arguments.of(Map.of("kvcache.env.MOEMESH_KVCACHE_COMPACTION_PERIOD", "0s",
                        "kvcache.persistence.size", "500Gi"), 500 * GiB));
    }

    @ParameterizedTest(name = "{0} -> {1} bytes")
    @MethodSource("ssdTiers")
    void kvcacheStartupProbe_outlastsReadingTheSsdTierAt100MBps(Map<String, String> overrides, double scanBytes) {
        V1Probe startup = kvcache(Chart.template(DEFAULTS, overrides)).getStartupProbe();
        long budget = (long) startup.getFailureThreshold() * startup.getPeriodSeconds();
        assertThat(budget).isGreaterThanOrEqualTo((long) Math.ceil(scanBytes / READ_RATE) + 60);
    }

    /**
     * Values that let the SSD tier hold less than the volume, and the volume's bytes. SsdTier.open scans every
     * segment file before it evicts down to the new ssdBytes, so a pod upgraded from the defaults (segment files of
     * up to 94.6 GB) to a smaller tier, a smaller DRAM tier or compaction turned back on still reads all that the
     * old values let grow: the startup budget covers the whole volume, whatever the new values would allow.
     */
    static Stream<Arguments> tiersBelowTheVolume() {
        return Stream.of(
                Arguments.of(Map.of("kvcache.ssdBytes", "10000000000"), 100 * GiB),
                Arguments.of(Map.of("kvcache.ssdBytes", "10000000000", "kvcache.dramBytes", "1073741824"), 100 * GiB),
                Arguments.of(Map.of("kvcache.ssdBytes", "10000000000", "kvcache.persistence.size", "500Gi"),
                        500 * GiB),
                Arguments.of(Map.of("kvcache.ssdBytes", "1000000000",
                        "kvcache.env.MOEMESH_KVCACHE_COMPACTION_LIVE_FRACTION", "0.9"), 100 * GiB));
    }

    @ParameterizedTest(name = "{0} -> {1} bytes")
    @MethodSource("tiersBelowTheVolume")
    void kvcacheStartupProbe_outlastsReadingTheWholeVolume_notJustWhatTheNewSsdBytesAllows(
            Map<String, String> overrides, double volumeBytes) {
        V1Probe startup = kvcache(Chart.template(DEFAULTS, overrides)).getStartupProbe();
        long budget = (long) startup.getFailureThreshold() * startup.getPeriodSeconds();
        assertThat(budget).isGreaterThanOrEqualTo((long) Math.ceil(volumeBytes / READ_RATE) + STARTUP_MARGIN);
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
     * values.schema.json describes the derived budget and the ssdBytes bound as the templates compute them (the
     * whole volume; size less DRAM tier and segment), the numbers a reader sizes a volume by.
     */
    @Test
    void schemaDescriptions_sayWhatTheTemplatesDerive() throws IOException {
        Map<String, Object> schema = new Yaml().load(Files.readString(Chart.DIR.resolve("values.schema.json")));
        String startup = (String) Chart.value(schema, "properties.kvcache.properties.startupProbeSeconds.description");
        String ssdBytes = (String) Chart.value(schema, "properties.kvcache.properties.ssdBytes.description");
        V1Probe probe = kvcache(Chart.template(DEFAULTS, Map.of())).getStartupProbe();
        long derived = (long) Math.ceil(100 * GiB / READ_RATE) + STARTUP_MARGIN;

        assertThat(startup).contains("120 + the whole SSD volume (persistence.size) read at 100 MB/s, " + derived)
                .doesNotContain("ssdBytes");
        assertThat((long) probe.getFailureThreshold() * probe.getPeriodSeconds()).isBetween(derived, derived + 4);
        assertThat(ssdBytes).contains("(persistence.size - dramBytes - one segment) x the compaction live fraction");
    }

    /**
     * The gateway's terminationGracePeriodSeconds is its preStop plus its whole stop: shutdown-grace, the drain's
     * 5 s stop wait, the KV write-back drain timeout (10 s unless gateway.env sets it, under any spelling Spring
     * reads) and 25 s for its HTTP and gRPC servers' stop (up to 5 + 5 + 5 s) and its exit:
     * MeshShutdown.gatewayStopGrace of the CLI, plus preStop.
     */
    static Stream<Arguments> gatewayStops() {
        return Stream.of(
                Arguments.of(Map.of(), 10 + 30 + 5 + 10 + 25),
                Arguments.of(Map.of("gateway.drain.preStopSeconds", "0", "gateway.drain.shutdownGraceSeconds", "5"),
                        5 + 5 + 10 + 25),
                Arguments.of(Map.of("gateway.env.MOEMESH_GATEWAY_KVCACHE_DRAIN_TIMEOUT", "1m"), 10 + 30 + 5 + 60 + 25),
                Arguments.of(Map.of("gateway.env.MOEMESH_GATEWAY_KVCACHE_DRAINTIMEOUT", "PT45S"),
                        10 + 30 + 5 + 45 + 25),
                Arguments.of(Map.of("gateway.env.moemesh_gateway_kvcache_drain_timeout", "30001"), // ms, rounded up
                        10 + 30 + 5 + 31 + 25),
                Arguments.of(Map.of("gateway.env.MOEMESH_GATEWAY_KVCACHE_DRAIN_TIMEOUT", "0s"), 10 + 30 + 5 + 25));
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

    /**
     * The router's terminationGracePeriodSeconds is its whole stop (it has no preStop): the shutdown-grace it is given
     * (router.shutdownGraceSeconds, rendered as MOEMESH_ROUTER_SHUTDOWN_GRACE), up to 10 s for the placement lease's
     * release (RouterLease.close), 5 s for the gRPC server's forced stop (GrpcServerLifecycle.stop) and 10 s for the
     * route statistics' snapshot (RouterBackground.stop), the other beans and the exit. It was a fixed 30 s, which a
     * longer grace passed.
     * A key missing from the values (--reuse-values from a chart before it) is the router's own default, 5 s.
     */
    static Stream<Arguments> routerStops() {
        return Stream.of(
                Arguments.of(Map.of(), 5, 5 + 10 + 5 + 10),
                Arguments.of(Map.of("router.shutdownGraceSeconds", "60"), 60, 60 + 10 + 5 + 10),
                Arguments.of(Map.of("router.shutdownGraceSeconds", "0"), 0, 10 + 5 + 10),
                Arguments.of(Map.of("router.shutdownGraceSeconds", "null"), 5, 5 + 10 + 5 + 10));
    }

    @ParameterizedTest(name = "{0} -> grace {1} s, {2} s")
    @MethodSource("routerStops")
    void routerTerminationGrace_coversTheShutdownGraceItIsGiven_theForcedStopSnapshotAndExit(
            Map<String, String> overrides, int graceSeconds, int expectedSeconds) {
        RenderedChart chart = RenderedChart.parse(Chart.template(DEFAULTS, overrides));
        RenderedChart.Workload router = chart.workloads().stream()
                .filter(w -> w.name().equals(Chart.RELEASE + "-router")).findFirst().orElseThrow();
        assertThat(router.template().getSpec().getTerminationGracePeriodSeconds()).isEqualTo(expectedSeconds);
        assertThat(chart.one(V1ConfigMap.class, Chart.RELEASE + "-router").getData())
                .containsEntry("MOEMESH_ROUTER_SHUTDOWN_GRACE", graceSeconds + "s");
    }

    /**
     * router.env may not give the router a grace of its own, under any spelling Spring reads: the kubelet would kill
     * it at the grace the chart derived from router.shutdownGraceSeconds, in the middle of the longer one.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"MOEMESH_ROUTER_SHUTDOWN_GRACE", "MOEMESH_ROUTER_SHUTDOWNGRACE"})
    void routerShutdownGrace_inRouterEnv_failsNamingTheValueTheTerminationGraceFollows(String name) {
        assertThatThrownBy(() -> Chart.template(DEFAULTS, Map.of("router.env." + name, "60s")))
                .hasMessageContaining("router.env." + name + " is set by the chart itself")
                .hasMessageContaining("from router.shutdownGraceSeconds; set router.shutdownGraceSeconds instead");
    }

    /**
     * A stopping kvcache pod lets in-flight calls finish for its shutdown-grace (10 s unless kvcache.env sets it,
     * under any spelling Spring reads), cancels the rest and waits up to 10 s for its two gRPC servers
     * (GrpcServerLifecycle.stop), up to 30 s for a compaction in progress to stop (KvCacheBackground), then demotes
     * the whole DRAM tier to the SSD volume and forces it (ServedModels.close): dramBytes written at 100 MB/s, plus
     * 15 s to exit. The kubelet must not kill it before, or the DRAM tier's blocks are lost. The CLI's `down` gives
     * it the same (MeshShutdown.kvcacheStopGrace).
     */
    static Stream<Arguments> kvcacheStops() {
        return Stream.of(
                Arguments.of(Map.of(), 10 + 10 + 30 + 43 + 15), // 4 GiB
                Arguments.of(Map.of("kvcache.dramBytes", "17179869184", "kvcache.ssdBytes", "40000000000",
                        "kvcache.resources.limits.memory", "24Gi"), 10 + 10 + 30 + 172 + 15),
                Arguments.of(Map.of("kvcache.dramBytes", "17179869184", "kvcache.ssdBytes", "40000000000",
                        "kvcache.resources.limits.memory", "24Gi", "kvcache.env.MOEMESH_KVCACHE_SHUTDOWN_GRACE", "1m"),
                        60 + 10 + 30 + 172 + 15),
                Arguments.of(Map.of("kvcache.env.MOEMESH_KVCACHE_SHUTDOWNGRACE", "PT45S"), 45 + 10 + 30 + 43 + 15),
                // a set value above what the stop needs (a volume slower than 100 MB/s) is kept
                Arguments.of(Map.of("kvcache.terminationGracePeriodSeconds", "600"), 600));
    }

    @ParameterizedTest(name = "{0} -> {1} s")
    @MethodSource("kvcacheStops")
    void kvcacheTerminationGrace_coversShutdownGraceAndDemotingTheDramTierAt100MBps(Map<String, String> overrides,
                                                                                     int expectedSeconds) {
        RenderedChart chart = RenderedChart.parse(Chart.template(DEFAULTS, overrides));
        RenderedChart.Workload kvcache = chart.workloads().stream()
                .filter(w -> w.name().equals(Chart.RELEASE + "-kvcache")).findFirst().orElseThrow();
        assertThat(kvcache.template().getSpec().getTerminationGracePeriodSeconds()).isEqualTo(expectedSeconds);
    }

    /** A set grace below what the stop needs fails, naming the value and the seconds needed. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("shortKvcacheGraces")
    void kvcacheTerminationGrace_setBelowTheStop_failsNamingWhatItNeeds(Map<String, String> overrides, int needed) {
        assertThatThrownBy(() -> Chart.template(DEFAULTS, overrides))
                .hasMessageContaining("kvcache.terminationGracePeriodSeconds (")
                .hasMessageContaining("at least " + needed);
    }

    static Stream<Arguments> shortKvcacheGraces() {
        return Stream.of(
                // the chart's old default, with 16 GiB of DRAM to write
                Arguments.of(Map.of("kvcache.terminationGracePeriodSeconds", "120", "kvcache.dramBytes", "17179869184",
                        "kvcache.ssdBytes", "40000000000", "kvcache.resources.limits.memory", "24Gi"),
                        10 + 10 + 30 + 172 + 15),
                // the chart's old derived grace, 25 s short of the compaction's stop and the servers' forced stop
                Arguments.of(Map.of("kvcache.terminationGracePeriodSeconds", "83"), 108),
                Arguments.of(Map.of("kvcache.terminationGracePeriodSeconds", "107"), 108));
    }

    private static V1Container kvcache(String manifests) {
        return RenderedChart.parse(manifests).workloads().stream()
                .filter(w -> w.name().equals(Chart.RELEASE + "-kvcache")).findFirst().orElseThrow()
                .template().getSpec().getContainers().getFirst();
    }
}
