package io.moemesh.cli.router;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import io.moemesh.cli.CliRun;
import io.moemesh.cli.mesh.MeshLauncher;
import io.moemesh.cli.mesh.MeshState;
import io.moemesh.cli.mesh.MeshStates;
import io.moemesh.proto.router.v1.DescribeRouterResponse;
import io.moemesh.proto.router.v1.PlacementSummary;
import io.moemesh.proto.router.v1.ReplanResponse;
import io.moemesh.proto.router.v1.WatcherState;
import io.moemesh.service.tls.CertificateDirectory;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@code router replan} and {@code router describe} against a router stub on a real mutual TLS socket: what they
 * send, what they print, and how the router's gRPC errors read; the real router is in the e2e tests.
 */
class RouterMeshCommandsTest {
    @TempDir
    Path state;

    private StubRouter router;

    /** A mesh state as up leaves it: tls/ with the placer's certificate, mesh.json naming the router. */
    @BeforeEach
    void mesh() {
        CertificateDirectory certs = CertificateDirectory.create(MeshLauncher.tlsDir(state),
                List.of("router", "placer", "gateway"));
        router = new StubRouter(certs);
        MeshState.Service r = new MeshState.Service("router", 1, "", Integer.parseInt(router.endpoint().split(":")[1]),
                0, state.resolve("logs/router.log").toString(), List.of("java"), Map.of());
        MeshStates.write(state, new MeshState("/m", 1, 1, state.resolve("placement.json").toString(), List.of(), null,
                null, r));
    }

    @AfterEach
    void stop() throws InterruptedException {
        router.close();
    }

    private CliRun run(String... args) {
        String[] all = new String[args.length + 2];
        System.arraycopy(args, 0, all, 0, args.length);
        all[args.length] = "--state-dir";
        all[args.length + 1] = state.toString();
        return CliRun.of(all);
    }

    @Test
    void replan_asksTheMeshRouterAsThePlacer_toWaitForWatchers_andPrintsEpochPlannerSummaryAndPublishTime() {
        router.replan = ReplanResponse.newBuilder().setEpoch(2).setPlanner("even").setApplied(true).setPublishMillis(412)
                .setSummary(PlacementSummary.newBuilder().setInstances(3).setExtraReplicas(32).setMaxSlotsUsed(6))
                .build();
        CliRun r = run("router", "replan");
        assertThat(r.exitCode()).as(r.err()).isZero();
        assertThat(r.out().lines().toList()).containsExactly("epoch: 2", "planner: even", "instances: 3",
                "extra replicas: 32", "max slots: 6", "routes scored: 0", "fan-out: - (no routes scored)",
                "load max/mean: - (no routes scored)", "published in: 412 ms", "applied: yes");
        assertThat(router.caller).isEqualTo("placer");
        assertThat(router.lastReplan.getPlanner()).isEmpty();
        assertThat(router.lastReplan.getWaitForWatchers()).isTrue();
        assertThat(router.lastReplan.getWatchersTimeoutMs()).isEqualTo(30_000);
    }

    @Test
    void replan_withPlannerAndTimeout_sendsThem_andPrintsTheScoreOfTheRoutesSeen() {
        router.replan = ReplanResponse.newBuilder().setEpoch(9).setPlanner("affinity").setApplied(true)
                .setSummary(PlacementSummary.newBuilder().setInstances(4).setRoutesScored(2048).setFanOut(1.8125)
                        .setLoadMaxOverMean(1.0625)).build();
        CliRun r = run("router", "replan", "--planner", "affinity", "--timeout", "2m");
        assertThat(r.exitCode()).as(r.err()).isZero();
        assertThat(r.out()).contains("planner: affinity", "routes scored: 2048", "fan-out: 1.813", "load max/mean: 1.063");
        assertThat(router.lastReplan.getPlanner()).isEqualTo("affinity");
        assertThat(router.lastReplan.getWatchersTimeoutMs()).isEqualTo(120_000);
    }

    @Test
    void replan_publishedButNotAppliedByEveryWatcher_exits1_namingTheUnappliedWatchers() {
        router.replan = ReplanResponse.newBuilder().setEpoch(5).setPlanner("affinity").setApplied(false)
                .addUnappliedWatchers("gw-1").addUnappliedWatchers("gw-2").build();
        CliRun r = run("router", "replan", "--timeout", "500ms");
        assertThat(r.exitCode()).isEqualTo(1);
        assertThat(r.out()).contains("epoch: 5", "applied: no (unapplied watchers: gw-1, gw-2)");
        assertThat(r.err()).contains("moemesh router replan: epoch 5 is published but not applied by every watcher "
                + "within 500ms: gw-1, gw-2 had not reported it applied");
        assertThat(router.lastReplan.getWatchersTimeoutMs()).isEqualTo(500);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
            ABORTED             | placement epoch 3 was not published: expert-1 (127.0.0.1:7) failed | 1 | the new epoch was not published, an instance failed to load it: placement epoch 3 was not published: expert-1 (127.0.0.1:7) failed
            FAILED_PRECONDITION | a replan is already running; try again once it has published     | 1 | the router refused: a replan is already running
            INVALID_ARGUMENT    | planner: must be one of affinity, round-robin, got "magic"        | 2 | the router refused the request: planner: must be one of affinity, round-robin, got "magic"
            PERMISSION_DENIED   | Replan is reserved to the operator identities [placer]            | 1 | not allowed: Replan is reserved to the operator identities [placer]
            INTERNAL            | internal error                                                    | 1 | INTERNAL: internal error
            """)
    void replan_routerErrors_printOneClearLine_withTheExitCodeOfTheirKind(Status.Code code, String description,
                                                                          int exit, String line) {
        router.failure = Status.fromCode(code).withDescription(description);
        CliRun r = run("router", "replan", "--planner", "magic");
        assertThat(r.exitCode()).isEqualTo(exit);
        assertThat(r.err()).startsWith("moemesh router replan: " + line);
        assertThat(r.err().lines()).hasSize(1);
        assertThat(r.out()).isEmpty();
    }

    @Test
    void replan_toARouterThatIsNotThere_exits3_namingTheEndpoint() throws InterruptedException {
        String gone = router.endpoint();
        router.close();
        CliRun r = run("router", "replan");
        assertThat(r.exitCode()).isEqualTo(3);
        assertThat(r.err()).startsWith("moemesh router replan: router not reachable at " + gone);
    }

    @Test
    void endpointOption_overridesTheMeshState() {
        router.describe = DescribeRouterResponse.newBuilder().setPlacementEpoch(4).build();
        MeshStates.write(state, new MeshState("/m", 1, 1, "/p", List.of(), null, null, null));
        CliRun r = run("router", "describe", "--endpoint", router.endpoint());
        assertThat(r.exitCode()).as(r.err()).isZero();
        assertThat(r.out()).startsWith("epoch: 4");
    }

    @Test
    void describe_printsTheRoutersState_andItsWatchers() {
        router.describe = DescribeRouterResponse.newBuilder().setPlacementEpoch(3).setPlanner("affinity")
                .setPredictor("learned").setInstances(2).setRoutesSeen(5000).setRoutesInWindow(4096)
                .setReplanRunning(true)
                .addWatchers(WatcherState.newBuilder().setWatcherId("gateway-a").setAppliedEpoch(3))
                .addWatchers(WatcherState.newBuilder().setWatcherId("gateway-b").setAppliedEpoch(2)).build();
        CliRun r = run("router", "describe");
        assertThat(r.exitCode()).as(r.err()).isZero();
        assertThat(r.out().lines().toList()).containsExactly("epoch: 3", "planner: affinity", "predictor: learned",
                "instances: 2", "routes seen: 5000", "routes in window: 4096", "replan running: yes",
                "watchers: gateway-a (applied epoch 3), gateway-b (applied epoch 2)");
        assertThat(router.caller).isEqualTo("placer");
    }

    @ParameterizedTest
    @ValueSource(strings = {"0", "0s", "abc", "-5s", "30x", "4294968s", "601"})
    void replan_withABadTimeout_exits2_namingTheOption(String timeout) {
        CliRun r = run("router", "replan", "--timeout", timeout);
        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.err()).contains("--timeout must be");
        assertThat(router.lastReplan).isNull();
    }

    /** The router refuses watchers_timeout_ms above 10 minutes with INVALID_ARGUMENT: refused here first. */
    @ParameterizedTest
    @ValueSource(strings = {"600001ms", "11m", "1h", "4294967295ms"})
    void replan_withATimeoutAboveTheRoutersTenMinutes_exits2_namingTheOptionAndTheLimit_beforeCallingIt(
            String timeout) {
        CliRun r = run("router", "replan", "--timeout", timeout);
        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.err()).contains("--timeout must be more than 0 and at most 10m", "got " + timeout);
        assertThat(router.lastReplan).isNull();
    }

    @ParameterizedTest
    @CsvSource({"500ms,500", "30,30000", "30s,30000", "2m,120000", "10m,600000", "600000ms,600000", "600,600000"})
    void timeout_acceptsMillisecondsSecondsAndMinutes_upToTheRoutersTenMinutes(String text, long millis) {
        assertThat(ReplanCommand.watchersTimeout(text)).isEqualTo(Duration.ofMillis(millis));
    }

    @ParameterizedTest
    @ValueSource(strings = {"nohost", "host:port", "host:70000", ":"})
    void aMalformedEndpoint_exits2_namingTheOption(String endpoint) {
        CliRun r = run("router", "describe", "--endpoint", endpoint);
        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.err()).contains("--endpoint must be HOST:PORT");
    }

    @Test
    void withoutAMeshInTheStateDir_exits2_sayingHowToStartOne(@TempDir Path empty) {
        CliRun r = CliRun.of("router", "replan", "--state-dir", empty.toString());
        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.err()).contains("no mesh in " + empty.toAbsolutePath().normalize()).contains("moemesh up")
                .contains("--endpoint");
    }

    @Test
    void aMeshWithoutRouter_exits2_sayingSo() {
        MeshStates.write(state, new MeshState("/m", 1, 1, "/p", List.of(), null, null, null));
        CliRun r = run("router", "replan");
        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.err()).contains("runs without a router (up --no-router");
    }

    @Test
    void withoutThePlacerCertificate_exits2_namingTheMissingFile(@TempDir Path other) {
        CliRun r = CliRun.of("router", "describe", "--endpoint", router.endpoint(), "--state-dir", other.toString());
        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.err()).contains("no certificate for placer (placer.crt is missing)");
    }

}
