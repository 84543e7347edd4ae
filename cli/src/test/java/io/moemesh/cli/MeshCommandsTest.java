package io.moemesh.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.cli.mesh.FakeHome;
import io.moemesh.cli.mesh.KvCacheSettings;
import io.moemesh.cli.mesh.MeshState;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** up / down / demo as commands (stdout format, exit codes) on fake service jars; e2e/ runs the real services. */
class MeshCommandsTest {
    @TempDir
    Path tmp;

    private String previousHome;
    private Path state;

    @BeforeEach
    void fakeHome() throws IOException {
        Path home = FakeHome.create(tmp.resolve("home")).root();
        previousHome = System.setProperty("moemesh.home", home.toString());
        state = tmp.resolve("state");
    }

    @AfterEach
    void restore() {
        CliRun.of("down", "--state-dir", state.toString());
        if (previousHome == null) {
            System.clearProperty("moemesh.home");
        } else {
            System.setProperty("moemesh.home", previousHome);
        }
    }

    @Test
    void up_printsTheGatewayHttpRouterAndKvCacheLinesAndOneLinePerInstance_routerCommandsReachItsRouter_thenDownStopsEverything() {
        CliRun up = CliRun.of("up", "--model", TestModels.dir(TestModels.MIXTRAL).toString(), "--experts", "2",
                "--state-dir", state.toString(), "--heap", "256m");
        assertThat(up.exitCode()).as(up.err()).isZero();
        String[] lines = up.out().strip().split("\\R");
        assertThat(lines).hasSize(6);
        assertThat(lines[0]).matches("gateway: 127\\.0\\.0\\.1:\\d+");
        assertThat(lines[1]).matches("http: http://127\\.0\\.0\\.1:\\d+");
        assertThat(lines[2]).matches("router: 127\\.0\\.0\\.1:\\d+");
        // the kvcache-service too: its socket next to the instances' where epoll is available
        assertThat(lines[3]).matches("kvcache: " + (io.moemesh.service.grpc.InstanceEndpoint.domainSocketsAvailable()
                ? java.util.regex.Pattern.quote("unix://" + state.toAbsolutePath().resolve("sockets").resolve("kvcache.sock"))
                : "127\\.0\\.0\\.1:\\d+"));
        // up's default transport: a domain socket per instance where epoll is available (Linux), else loopback TCP
        String endpoint = io.moemesh.service.grpc.InstanceEndpoint.domainSocketsAvailable()
                ? java.util.regex.Pattern.quote("unix://" + state.toAbsolutePath().resolve("sockets").resolve("expert-0.sock"))
                : "127\\.0\\.0\\.1:\\d+";
        // up's default replicas: every instance holds every expert
        assertThat(lines[4]).matches("expert-0 " + endpoint + " experts: (L\\d\\[0,1,2,3,4,5,6,7] ?){4}");
        assertThat(lines[5]).startsWith("expert-1 ");
        assertThat(up.err()).contains("moemesh down --state-dir " + state);
        MeshState s = MeshState.read(state).orElseThrow();
        assertThat(lines[0]).isEqualTo("gateway: " + s.gateway().grpcEndpoint());
        assertThat(lines[1]).isEqualTo("http: http://127.0.0.1:" + s.gateway().httpPort());
        assertThat(lines[2]).isEqualTo("router: " + s.router().grpcEndpoint());
        assertThat(lines[3]).isEqualTo("kvcache: " + KvCacheSettings.endpoint(s.kvcache()));
        assertThat(s.gateway().environment()).containsEntry("MOEMESH_GATEWAY_KVCACHE_ENDPOINT",
                KvCacheSettings.endpoint(s.kvcache()));

        // the router of the mesh.json, as the placer of its tls/ (the fake router keeps its epoch in placement.json)
        CliRun describe = CliRun.of("router", "describe", "--state-dir", state.toString());
        assertThat(describe.exitCode()).as(describe.err()).isZero();
        assertThat(describe.out()).startsWith("epoch: 1" + System.lineSeparator()).contains("instances: 2");
        CliRun replan = CliRun.of("router", "replan", "--state-dir", state.toString());
        assertThat(replan.exitCode()).as(replan.err()).isZero();
        assertThat(replan.out()).startsWith("epoch: 2" + System.lineSeparator() + "planner: even");

        CliRun down = CliRun.of("down", "--state-dir", state.toString());
        assertThat(down.exitCode()).isZero();
        assertThat(down.out()).contains("stopped expert-0 (pid " + s.experts().getFirst().pid() + ")")
                .contains("stopped router (pid " + s.router().pid() + ")").contains("stopped gateway")
                .contains("stopped kvcache (pid " + s.kvcache().pid() + ")");
        assertThat(s.services()).allSatisfy(svc -> assertThat(svc.process()).isEmpty());
    }

    @Test
    void upNoRouterNoKvCache_printsNeitherLine_andRouterCommandsSayTheMeshHasNone() {
        CliRun up = CliRun.of("up", "--model", TestModels.dir(TestModels.MIXTRAL).toString(), "--experts", "1",
                "--no-router", "--no-kvcache", "--state-dir", state.toString(), "--heap", "256m");
        assertThat(up.exitCode()).as(up.err()).isZero();
        assertThat(up.out().strip().split("\\R")).hasSize(3).noneMatch(l -> l.startsWith("router"))
                .noneMatch(l -> l.startsWith("kvcache"));
        MeshState s = MeshState.read(state).orElseThrow();
        assertThat(s.router()).isNull();
        assertThat(s.kvcache()).isNull();
        assertThat(s.gateway().environment()).doesNotContainKey("MOEMESH_GATEWAY_KVCACHE_ENDPOINT");

        CliRun describe = CliRun.of("router", "describe", "--state-dir", state.toString());
        assertThat(describe.exitCode()).isEqualTo(2);
        assertThat(describe.err()).contains("the mesh in " + state + " runs without a router");
    }

    @Test
    void down_withNothingRunning_exits0() {
        CliRun down = CliRun.of("down", "--state-dir", state.toString());
        assertThat(down.exitCode()).isZero();
        assertThat(down.out()).contains("no mesh running");
    }

    @Test
    void up_withMoreReplicasThanExperts_exitsWith2() {
        CliRun up = CliRun.of("up", "--model", TestModels.dir(TestModels.MIXTRAL).toString(), "--experts", "2",
                "--replicas", "3", "--state-dir", state.toString());
        assertThat(up.exitCode()).isEqualTo(2);
        assertThat(up.err()).contains("--replicas must be in [1, --experts = 2], got 3");
    }

    @Test
    void up_withAMissingModel_exitsWith2() {
        CliRun up = CliRun.of("up", "--model", tmp.resolve("nope").toString(), "--state-dir", state.toString());
        assertThat(up.exitCode()).isEqualTo(2);
        assertThat(up.err()).contains("nope");
    }

    @Test
    void up_whenAServiceCrashes_exitsWith3NamingItsLog() {
        CliRun up = CliRun.of("up", "--model", TestModels.dir(TestModels.MIXTRAL).toString(), "--experts", "1",
                "--state-dir", state.toString(), "--jvm-option=-Dfake.crash=gateway");
        assertThat(up.exitCode()).isEqualTo(3);
        assertThat(up.err()).contains("gateway exited during startup; see " + state.resolve("logs/gateway.log"));
        assertThat(up.out()).isEmpty();
    }

    @Test
    void demo_streamsAGenerationShowsTheDispatch_andStopsTheMesh() {
        GoldenCase g = GoldenCase.load(TestModels.MIXTRAL_BF16).get(2);
        CliRun demo = CliRun.of("demo", "--model", TestModels.dir(TestModels.MIXTRAL_BF16).toString(), "--state-dir", state.toString(), "--prompt", g.prompt(), "--max-tokens", "16");
        assertThat(demo.exitCode()).as(demo.err()).isZero();
        assertThat(demo.out()).startsWith("gateway: 127.0.0.1:")
                .contains("completion: " + g.greedyText() + System.lineSeparator())
                .contains("where the prompt's " + g.inputIds().length + " tokens went (placement epoch 0):")
                .contains("  layer 3: local <- " + g.inputIds().length + " tokens, experts [");
        assertThat(MeshState.file(state)).doesNotExist();
    }
}
