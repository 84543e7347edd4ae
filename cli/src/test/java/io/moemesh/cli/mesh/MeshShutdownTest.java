package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** How long {@code down} lets each stage of a mesh shut down before SIGKILL (no processes: the plan only). */
class MeshShutdownTest {

    /**
     * The gateway stage outlasts what the gateway itself may take: its shutdown-grace, the drain's 5 s stop wait,
     * its write-back drain timeout and 25 s for its servers' stop and its exit, from its recorded environment or its
     * defaults (30 s, 10 s); a longer --grace only lengthens it.
     */
    @ParameterizedTest(name = "[{0}] --grace {1} -> {2} s")
    @CsvSource(delimiter = '|', nullValues = "-", value = {
        "-                                                                   | 20 | 70",
        "-                                                                   | 1  | 70",
        "-                                                                   | 90 | 90",
        "MOEMESH_GATEWAY_SHUTDOWN_GRACE=120s                                 | 20 | 160",
        "MOEMESH_GATEWAY_SHUTDOWN_GRACE=2m                                   | 20 | 160",
        "MOEMESH_GATEWAY_SHUTDOWN_GRACE=PT45S                                | 20 | 85",
        "MOEMESH_GATEWAY_SHUTDOWN_GRACE=45000                                | 20 | 85",
        "MOEMESH_GATEWAY_KVCACHE_DRAIN_TIMEOUT=1m                            | 20 | 120",
        "MOEMESH_GATEWAY_SHUTDOWN_GRACE=0s,MOEMESH_GATEWAY_KVCACHE_DRAIN_TIMEOUT=0s | 1 | 30",
        "MOEMESH_GATEWAY_SHUTDOWN_GRACE=0s,MOEMESH_GATEWAY_KVCACHE_DRAIN_TIMEOUT=0s | 40 | 40",
        // a value the gateway cannot bind stops it at startup: its default is as good as any
        "MOEMESH_GATEWAY_SHUTDOWN_GRACE=soon                                 | 20 | 70",
        // every name the gateway's relaxed binding reads; with two, the one it takes (dashes dropped, upper case first)
        "MOEMESH_GATEWAY_SHUTDOWNGRACE=120s                                  | 20 | 160",
        "moemesh_gateway_shutdown_grace=120s                                 | 20 | 160",
        "MOEMESH_GATEWAY_KVCACHE_DRAINTIMEOUT=1m                             | 20 | 120",
        "MOEMESH_GATEWAY_SHUTDOWN_GRACE=5s,MOEMESH_GATEWAY_SHUTDOWNGRACE=120s | 20 | 160",
        "MOEMESH_GATEWAY_SHUTDOWNGRACE=5s,MOEMESH_GATEWAY_SHUTDOWN_GRACE=120s | 20 | 45",
        "moemesh_gateway_shutdown_grace=5s,MOEMESH_GATEWAY_SHUTDOWN_GRACE=120s | 20 | 160",
    })
    void gatewayStage_waitsAtLeastTheGatewaysShutdownGracePlusItsWriteBackDrain(String environment, int graceSeconds,
                                                                               int expectedSeconds) {
        MeshState state = mesh(service(MeshLauncher.GATEWAY, environment(environment)));
        List<MeshShutdown.Stage> stages = MeshShutdown.stages(state, Duration.ofSeconds(graceSeconds));
        assertThat(stages.getFirst().services()).extracting(MeshState.Service::name)
                .containsExactly(MeshLauncher.GATEWAY);
        assertThat(stages.getFirst().grace()).isEqualTo(Duration.ofSeconds(expectedSeconds));
    }

    /**
     * The kvcache-service stage outlasts what the service itself may take after SIGTERM: its shutdown-grace, 10 s
     * for its servers' forced stop, 30 s for a compaction to stop, its DRAM tier demoted at 100 MB/s (whole seconds,
     * rounded up) and 15 s to exit, from its recorded environment (under the name Spring binds) or its defaults
     * (10 s, up's 256 MiB); a longer --grace only lengthens it.
     */
    @ParameterizedTest(name = "[{0}] --grace {1} -> {2} s")
    @CsvSource(delimiter = '|', nullValues = "-", value = {
        "-                                                                      | 20  | 68",
        "-                                                                      | 0   | 68",
        "-                                                                      | 100 | 100",
        "MOEMESH_KVCACHE_SHUTDOWN_GRACE=90s                                     | 20  | 148",
        "MOEMESH_KVCACHE_SHUTDOWN_GRACE=PT90S                                   | 20  | 148",
        "MOEMESH_KVCACHE_SHUTDOWNGRACE=90s                                      | 20  | 148",
        "MOEMESH_KVCACHE_SHUTDOWN_GRACE=0s                                      | 20  | 58",
        // 8 GB at 100 MB/s: 80 s of demotion
        "MOEMESH_KVCACHE_DRAM_BYTES=8000000000                                  | 20  | 145",
        "MOEMESH_KVCACHE_DRAMBYTES=8000000000                                   | 20  | 145",
        "MOEMESH_KVCACHE_DRAM_BYTES=1000000001                                  | 20  | 76",
        "MOEMESH_KVCACHE_SHUTDOWN_GRACE=90s,MOEMESH_KVCACHE_DRAM_BYTES=8000000000 | 20 | 225",
        // with two names, the one the service binds (dashes dropped, upper case first)
        "MOEMESH_KVCACHE_DRAM_BYTES=268435456,MOEMESH_KVCACHE_DRAMBYTES=8000000000 | 20 | 145",
        "MOEMESH_KVCACHE_DRAM_BYTES=8000000000,MOEMESH_KVCACHE_DRAMBYTES=268435456 | 20 | 68",
        // values the service cannot bind stopped it (or up) at startup: its defaults are as good as any
        "MOEMESH_KVCACHE_SHUTDOWN_GRACE=soon                                    | 20  | 68",
        "MOEMESH_KVCACHE_DRAM_BYTES=lots                                        | 20  | 68",
    })
    void kvcacheStage_waitsAtLeastTheServicesShutdownGracePlusItsDramTiersDemotion(String environment,
                                                                                 int graceSeconds,
                                                                                 int expectedSeconds) {
        MeshState state = mesh(service(MeshLauncher.GATEWAY, Map.of()),
                service(MeshLauncher.KVCACHE, environment(environment)));
        List<MeshShutdown.Stage> stages = MeshShutdown.stages(state, Duration.ofSeconds(graceSeconds));
        assertThat(stages.get(1).services()).extracting(MeshState.Service::name)
                .containsExactly(MeshLauncher.KVCACHE);
        assertThat(stages.get(1).grace()).isEqualTo(Duration.ofSeconds(expectedSeconds));
    }

    /**
     * A {@code -D} option the service was started with ({@code up --jvm-option}) is what Spring binds, before the
     * environment, also under another spelling it accepts (camelCase, upper case); the canonical one wins over those.
     * After {@code -jar} it is a program argument: not a setting.
     */
    @ParameterizedTest(name = "[java {1}] [{2}] -> {3} s")
    @CsvSource(delimiter = '|', nullValues = "-", value = {
        "gateway | -Dmoemesh.gateway.shutdown-grace=120s -jar g.jar                                | -    | 160",
        "gateway | -Dmoemesh.gateway.shutdownGrace=120s -jar g.jar                                 | -    | 160",
        "gateway | -DMOEMESH.GATEWAY.SHUTDOWN-GRACE=120s -jar g.jar                                | -    | 160",
        "gateway | -Dmoemesh.gateway.shutdown-grace=120s -jar g.jar | MOEMESH_GATEWAY_SHUTDOWNGRACE=5s        | 160",
        "gateway | -Dmoemesh.gateway.shutdown-grace=120s -Dmoemesh.gateway.shutdownGrace=5s -jar g.jar | - | 160",
        "gateway | -Dmoemesh.gateway.shutdown-grace=5s -Dmoemesh.gateway.shutdown-grace=120s -jar g.jar | - | 160",
        "gateway | -Dmoemesh.gateway.kvcache.drainTimeout=1m -jar g.jar                             | -    | 120",
        "gateway | --add-modules jdk.incubator.vector -Dmoemesh.gateway.shutdown-grace=2m -jar g.jar   | -    | 160",
        "gateway | -jar g.jar -Dmoemesh.gateway.shutdown-grace=120s                                | -    | 70",
        // a value the gateway cannot bind stopped it at startup, whatever the environment says
        "gateway | -Dmoemesh.gateway.shutdown-grace=soon -jar g.jar | MOEMESH_GATEWAY_SHUTDOWN_GRACE=120s | 70",
        "kvcache | -Dmoemesh.kvcache.shutdown-grace=90s -jar k.jar                                 | -    | 148",
        "kvcache | -Dmoemesh.kvcache.dram-bytes=8000000000 -jar k.jar | MOEMESH_KVCACHE_DRAM_BYTES=268435456 | 145",
        "kvcache | -Dmoemesh.kvcache.dramBytes=8000000000 -jar k.jar                               | -    | 145",
    })
    void stage_followsTheSettingOfTheRecordedCommandsDOption_beforeTheEnvironment(String name, String args,
                                                                                  String environment,
                                                                                  int expectedSeconds) {
        List<String> command = new java.util.ArrayList<>(List.of("java"));
        command.addAll(List.of(args.strip().split("\\s+")));
        MeshState.Service s = new MeshState.Service(name, 0, "", 1, 2, "/dev/null", command, environment(environment));
        MeshState state = name.equals(MeshLauncher.GATEWAY) ? mesh(s) : mesh(service(MeshLauncher.GATEWAY, Map.of()), s);
        List<MeshShutdown.Stage> stages = MeshShutdown.stages(state, Duration.ofSeconds(20));
        MeshShutdown.Stage stage = stages.get(name.equals(MeshLauncher.GATEWAY) ? 0 : 1);
        assertThat(stage.services()).extracting(MeshState.Service::name).containsExactly(name);
        assertThat(stage.grace()).isEqualTo(Duration.ofSeconds(expectedSeconds));
    }

    @Test
    void stages_gatewayFirst_thenTheKvCacheGivenItsStopGrace_thenTheRestGivenTheGrace() {
        MeshState state = mesh(service(MeshLauncher.GATEWAY, Map.of()));
        List<MeshShutdown.Stage> stages = MeshShutdown.stages(state, Duration.ofSeconds(5));
        assertThat(stages).extracting(s -> s.services().stream().map(MeshState.Service::name).toList())
                .containsExactly(List.of(MeshLauncher.GATEWAY), List.of(MeshLauncher.KVCACHE),
                        List.of("expert-0", "expert-1", MeshLauncher.ROUTER));
        assertThat(stages).extracting(MeshShutdown.Stage::grace).containsExactly(Duration.ofSeconds(70),
                Duration.ofSeconds(68), Duration.ofSeconds(5));
    }

    /**
     * The supervisor's SIGTERM hook waits up to 10 s for a restart in progress to be recorded: SIGKILL before that
     * (--grace 0) would leave the restarted JVM unrecorded, holding its ports. It gets that wait plus 2 s to exit
     * whatever --grace says, and no more than 15 s.
     */
    @ParameterizedTest(name = "--grace {0} -> {1} s")
    @CsvSource({"0, 12", "1, 12", "12, 12", "14, 14", "20, 15", "600, 15"})
    void supervisor_getsAtLeastItsOwnStopWaitPlusAMargin_whateverTheGrace(int graceSeconds, int expectedSeconds) {
        Duration g = MeshShutdown.supervisorGrace(Duration.ofSeconds(graceSeconds));
        assertThat(g).isEqualTo(Duration.ofSeconds(expectedSeconds))
                .isGreaterThan(MeshSupervisor.STOP_WAIT);
    }

    @Test
    void meshStillStartingWithoutAGateway_stopsTheOthersOnTheirStages() {
        MeshState state = mesh(null);
        List<MeshShutdown.Stage> stages = MeshShutdown.stages(state, Duration.ofSeconds(20));
        assertThat(stages.getFirst().services()).isEmpty();
        assertThat(stages.get(1).services()).extracting(MeshState.Service::name).containsExactly(MeshLauncher.KVCACHE);
        assertThat(stages.get(2).grace()).isEqualTo(Duration.ofSeconds(20));
    }

    private static MeshState mesh(MeshState.Service gateway) {
        return mesh(gateway, service(MeshLauncher.KVCACHE, Map.of()));
    }

    private static MeshState mesh(MeshState.Service gateway, MeshState.Service kvcache) {
        return new MeshState("/models/m", 1, 1, "/state/placement.json",
                List.of(service("expert-0", Map.of()), service("expert-1", Map.of())), gateway, null,
                service(MeshLauncher.ROUTER, Map.of()), kvcache);
    }

    private static MeshState.Service service(String name, Map<String, String> environment) {
        return new MeshState.Service(name, 0, "", 1, 2, "/dev/null", List.of("java"), environment);
    }

    private static Map<String, String> environment(String pairs) {
        return pairs == null ? Map.of() : Arrays.stream(pairs.split(",")).map(p -> p.strip().split("=", 2))
                .collect(Collectors.toMap(p -> p[0], p -> p[1]));
    }
}
