package io.moemesh.e2e;

import static io.moemesh.model.golden.JsonArrays.floats;
import static io.moemesh.model.golden.JsonArrays.ints;
import static io.moemesh.model.golden.JsonArrays.routes;
import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moemesh.cli.mesh.KvCacheSettings;
import io.moemesh.cli.mesh.MeshLauncher;
import io.moemesh.cli.mesh.MeshState;
import io.moemesh.service.grpc.InstanceEndpoint;
import io.moemesh.cli.mesh.ServiceProcess;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.LoadAssignmentRequest;
import io.moemesh.service.tls.CertificateDirectory;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.assertj.core.api.SoftAssertions;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The launcher as a user runs it: {@code ./moemesh up} (with its router and kvcache-service), {@code router describe},
 * {@code generate --endpoint} for every golden case, {@code down}, each a separate process of the repository's
 * launcher script.
 */
class LauncherScriptTest {
    private static final Path ROOT = TestModels.repoRoot();
    private static final Path STATE = TestMeshes.stateDir("launcher");
    private static final Path RUNS = STATE.resolveSibling("launcher-runs");
    /**
     * Ends a launcher run still going (an {@code up} holding the state directory's lock), then stops the mesh
     * recorded. {@code down(STATE, grace)} waits for no launch: a hook that waited for one (up to 600 s) blocked the
     * JVM's exit until surefire SIGKILLed it, and nothing was cleaned up.
     */
    private static final Thread CLEANUP = new Thread(() -> {
        LauncherRun.killRunning();
        MeshLauncher.down(STATE, Duration.ofSeconds(10));
    });

    @BeforeAll
    static void clean() throws IOException {
        MeshLauncher.down(STATE, Duration.ofSeconds(10));
        Files.createDirectories(RUNS);
        // if this JVM dies mid-test, the detached services must not outlive it
        Runtime.getRuntime().addShutdownHook(CLEANUP);
    }

    @AfterAll
    static void stopMesh() {
        MeshLauncher.down(STATE, Duration.ofSeconds(10));
        Runtime.getRuntime().removeShutdownHook(CLEANUP);
    }

    @Test
    void upGenerateDown_threeExpertsTwoReplicas_givesTheGoldenOutputs() throws Exception {
        LauncherRun up = moemesh(Duration.ofMinutes(5), "up", "--model", "models/mixtral-tiny-bf16", "--experts", "3",
                "--replicas", "2", "--state-dir", STATE.toString(), "--heap", TestMeshes.HEAP);
        assertThat(up.exit()).as("up exit code; stderr:%n%s", up.err()).isZero();
        List<String> lines = up.out().lines().toList();
        assertThat(lines).as("up stdout").hasSize(7);
        assertThat(lines.getFirst()).matches("gateway: 127\\.0\\.0\\.1:\\d+");
        assertThat(lines.get(1)).matches("http: http://127\\.0\\.0\\.1:\\d+");
        assertThat(lines.get(2)).matches("router: 127\\.0\\.0\\.1:\\d+");
        // the kvcache-service on a domain socket next to the instances' where epoll is available, else TCP
        assertThat(lines.get(3)).matches(InstanceEndpoint.domainSocketsAvailable() ? "kvcache: unix:///\\S+/kvcache\\.sock"
                : "kvcache: 127\\.0\\.0\\.1:\\d+");
        // up's default transport: a domain socket where epoll is available (in the state folder, or a short
        // folder under /tmp when that path is too long for sun_path), else TCP.
        String instance = InstanceEndpoint.domainSocketsAvailable() ? "unix:///\\S+/expert-\\d\\.sock"
                : "127\\.0\\.0\\.1:\\d+";
        assertThat(lines.subList(4, 7)).allMatch(l -> l.matches("expert-\\d " + instance + " experts:( L\\d\\[[\\d,]+])+"));
        String endpoint = lines.getFirst().substring("gateway: ".length());

        MeshState state = MeshState.read(STATE).orElseThrow();
        assertThat(state.services()).as("services outlive the up process").allSatisfy(s -> assertThat(s.process()).isPresent());
        assertThat(state.services()).allSatisfy(s -> assertThat(Path.of(s.logFile())).isNotEmptyFile());
        assertThat(state.services()).extracting(MeshState.Service::name).contains("router");
        assertThat(lines.get(2)).isEqualTo("router: " + state.router().grpcEndpoint());
        assertThat(state.services()).extracting(MeshState.Service::name).contains("kvcache");
        assertThat(lines.get(3)).isEqualTo("kvcache: " + KvCacheSettings.endpoint(state.kvcache()));
        // SERVING only once its SSD index (in <state-dir>/kvcache/) is rebuilt; mutual TLS like every internal port
        assertThat(ServiceProcess.serving("127.0.0.1", state.kvcache().grpcPort(),
                CertificateDirectory.open(MeshLauncher.tlsDir(STATE)).channelCredentials("gateway"))).isTrue();
        assertThat(ServiceProcess.serving("127.0.0.1", state.kvcache().grpcPort())).as("kvcache plaintext").isFalse();
        assertThat(state.gateway().environment()).containsEntry("MOEMESH_GATEWAY_KVCACHE_ENDPOINT",
                KvCacheSettings.endpoint(state.kvcache()));
        assertThat(STATE.resolve("kvcache")).isDirectory();
        internalPortsRefuseStrangers_andRogueAssignments(state);

        // the router published epoch 1 (it reports SERVING only then), as the placement file up wrote
        assertThat(ServiceProcess.serving("127.0.0.1", state.router().grpcPort(),
                CertificateDirectory.open(MeshLauncher.tlsDir(STATE)).channelCredentials("placer"))).isTrue();
        LauncherRun describe = moemesh(Duration.ofMinutes(1), "router", "describe", "--state-dir", STATE.toString());
        assertThat(describe.exit()).as("router describe exit code; stderr:%n%s", describe.err()).isZero();
        assertThat(describe.out()).startsWith("epoch: 1" + System.lineSeparator()).contains("instances: 3");

        SoftAssertions soft = new SoftAssertions();
        List<GoldenCase> cases = GoldenCase.load(TestModels.MIXTRAL_BF16);
        for (int i = 0; i < cases.size(); i++) {
            GoldenCase g = cases.get(i);
            // a prompt file keeps non-ASCII prompts intact whatever the locale of this JVM
            Path prompt = RUNS.resolve("prompt-" + i + ".txt");
            Files.writeString(prompt, g.prompt(), StandardCharsets.UTF_8);
            LauncherRun gen = moemesh(Duration.ofMinutes(2), "generate", "--endpoint", endpoint, "--prompt-file", prompt.toString(),
                    "--max-tokens", Integer.toString(g.greedyIds().length), "--json", "--trace");
            soft.assertThat(gen.exit()).as("%s: generate exit code; stderr:%n%s", g, gen.err()).isZero();
            if (gen.exit() == 0) {
                JsonNode j = JsonMapper.builder().build().readTree(gen.out().strip().lines().reduce((a, b) -> b).orElseThrow());
                GoldenAssert.matchesGolden(soft, g, ints(j.get("input_ids")), ints(j.get("generated_ids")),
                        j.get("text").stringValue(), floats(j.get("last_logits")), routes(j.get("router_topk")));
                soft.assertThat(j.get("finish_reason").stringValue()).as("%s: finish_reason", g).isEqualTo("length");
            }
        }
        soft.assertAll();

        LauncherRun down = moemesh(Duration.ofMinutes(1), "down", "--state-dir", STATE.toString());
        assertThat(down.exit()).as("down exit code; stderr:%n%s", down.err()).isZero();
        assertThat(down.out()).contains("stopped gateway (pid " + state.gateway().pid() + ")")
                .contains("stopped router (pid " + state.router().pid() + ")")
                .contains("stopped kvcache (pid " + state.kvcache().pid() + ")");
        assertThat(STATE.resolve("kvcache")).as("the SSD tier outlives down").isDirectory();
        assertThat(state.services()).allSatisfy(s -> assertThat(s.process()).as(s.name()).isEmpty());
        assertThat(ServiceProcess.serving("127.0.0.1", state.gateway().grpcPort())).isFalse();
        assertThat(MeshState.file(STATE)).doesNotExist();

        LauncherRun again = moemesh(Duration.ofMinutes(1), "down", "--state-dir", STATE.toString());
        assertThat(again.exit()).isZero();
        assertThat(again.out()).contains("no mesh running");
    }

    /**
     * What `up` set up for service-to-service gRPC: keys owner-only in <state>/tls/; the router's and every expert's
     * port refuse a client without the mesh's certificate (plaintext, or another CA's), LoadAssignment from a mesh member that is
     * not the placer, and an epoch that would pin it (2^64-1). The golden cases that follow show the instances
     * still serve.
     */
    private static void internalPortsRefuseStrangers_andRogueAssignments(MeshState state) throws IOException {
        Path tlsDir = MeshLauncher.tlsDir(STATE);
        for (String key : List.of("ca.key", "placer.key", "gateway.key", "expert-0.key", "router.key", "kvcache.key")) {
            assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(tlsDir.resolve(key)))).as(key)
                    .isEqualTo("rw-------");
        }
        CertificateDirectory mesh = CertificateDirectory.open(tlsDir);
        CertificateDirectory foreign = CertificateDirectory.create(RUNS.resolve("foreign-tls"), List.of("placer"));
        int router = state.router().grpcPort();
        assertThat(ServiceProcess.serving("127.0.0.1", router)).as("router plaintext").isFalse();
        assertThat(ServiceProcess.serving("127.0.0.1", router, foreign.channelCredentials("placer")))
                .as("router with another CA's certificate").isFalse();
        for (MeshState.Service expert : state.experts()) {
            int port = expert.grpcPort();
            assertThat(ServiceProcess.serving("127.0.0.1", port)).as("%s plaintext", expert.name()).isFalse();
            assertThat(ServiceProcess.serving("127.0.0.1", port, foreign.channelCredentials("placer")))
                    .as("%s with another CA's certificate", expert.name()).isFalse();
            assertThat(ServiceProcess.serving("127.0.0.1", port, mesh.channelCredentials("placer"))).isTrue();
            LoadAssignmentRequest rogue = LoadAssignmentRequest.newBuilder().setInstanceId(expert.name())
                    .setEpoch(-1).build();
            assertThat(loadAssignment(port, mesh.channelCredentials("gateway"), rogue))
                    .as("%s: the gateway places", expert.name()).isEqualTo(Status.Code.PERMISSION_DENIED);
            assertThat(loadAssignment(port, mesh.channelCredentials("placer"), rogue))
                    .as("%s: epoch 2^64-1", expert.name()).isEqualTo(Status.Code.FAILED_PRECONDITION);
        }
    }

    private static Status.Code loadAssignment(int port, ChannelCredentials credentials, LoadAssignmentRequest req) {
        ManagedChannel ch = Grpc.newChannelBuilderForAddress("127.0.0.1", port, credentials).build();
        try {
            ExpertServiceGrpc.newBlockingStub(ch).withDeadlineAfter(1, TimeUnit.MINUTES).loadAssignment(req);
            return Status.Code.OK;
        } catch (StatusRuntimeException e) {
            return e.getStatus().getCode();
        } finally {
            ch.shutdownNow();
        }
    }

    private static LauncherRun moemesh(Duration timeout, String... args) throws IOException, InterruptedException {
        return LauncherRun.of(RUNS, timeout, args);
    }
}
