package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.service.tls.CertificateDirectory;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The launcher on fake service jars: real detached JVMs, real health checks, real signals. */
class MeshLauncherTest {
    @TempDir
    Path tmp;

    private MeshHome home;
    private Path state;
    private final StringWriter log = new StringWriter();

    @BeforeEach
    void fakeHome() throws IOException {
        home = FakeHome.create(tmp.resolve("home"));
        state = tmp.resolve("state");
    }

    @AfterEach
    void stopLeftovers() {
        MeshLauncher.down(state, Duration.ofSeconds(5));
    }

    private MeshSpec spec(int experts, int replicas, Duration timeout, String... jvmOptions) {
        return new MeshSpec(TestModels.dir(TestModels.MIXTRAL_BF16), experts, replicas, state, "256m", timeout, home,
                List.of(jvmOptions));
    }

    @Test
    void up_startsDetachedServicesConfiguredByEnvironment_andDownStopsThemGracefully() throws IOException {
        RunningMesh mesh = MeshLauncher.up(spec(3, 2, Duration.ofSeconds(90)), new PrintWriter(log, true), false);
        MeshState s = MeshState.read(state).orElseThrow();
        Path tls = state.resolve("tls").toAbsolutePath();
        assertThat(s).isEqualTo(mesh.state());
        assertThat(s.experts()).extracting(MeshState.Service::name).containsExactly("expert-0", "expert-1", "expert-2");
        for (MeshState.Service svc : s.services()) {
            assertThat(svc.process()).as(svc.name()).isPresent();
            assertThat(ServiceProcess.serving("127.0.0.1", svc.grpcPort(), mesh.grpcCredentials(svc))).as(svc.name())
                    .isTrue();
            String out = Files.readString(Path.of(svc.logFile()));
            assertThat(out).contains("fake " + svc.name() + " pid " + svc.pid())
                    .contains("SERVER_PORT=" + svc.httpPort())
                    .contains("-Xmx256m").contains("-XX:+UseParallelGC").contains("-XX:+ExitOnOutOfMemoryError")
                    .contains("jdk.incubator.vector")
                    .contains("placement epoch 1 with 3 instances")
                    .contains("NATIVE_CACHE_DIR=" + state.resolve("native-cache").resolve(svc.name()));
        }
        assertThat(Files.readString(Path.of(s.service("expert-1").logFile())))
                .contains("env MOEMESH_EXPERT_INSTANCE_ID=expert-1").contains("env MOEMESH_EXPERT_DEVICE_SLOT=1")
                .contains("env MOEMESH_EXPERT_PLACEMENT_FILE=" + state.resolve("placement.json"))
                .contains("env MOEMESH_EXPERT_TLS_CERT_CHAIN=" + tls.resolve("expert-1.crt"))
                .contains("env MOEMESH_EXPERT_TLS_PRIVATE_KEY=" + tls.resolve("expert-1.key"))
                .contains("env MOEMESH_EXPERT_TLS_CA_BUNDLE=" + tls.resolve("ca.crt"));
        assertThat(Files.readString(Path.of(s.gateway().logFile())))
                .contains("env MOEMESH_GATEWAY_TLS_CERT_CHAIN=" + tls.resolve("gateway.crt"))
                .contains("env MOEMESH_GATEWAY_TLS_PRIVATE_KEY=" + tls.resolve("gateway.key"))
                .contains("env MOEMESH_GATEWAY_TLS_CA_BUNDLE=" + tls.resolve("ca.crt"));
        // Internal ports are mutual TLS: a plaintext health check (or one with another CA's certificate) fails.
        CertificateDirectory foreign = CertificateDirectory.create(tmp.resolve("foreign"), List.of("placer"));
        for (MeshState.Service expert : s.experts()) {
            assertThat(ServiceProcess.serving("127.0.0.1", expert.grpcPort())).as(expert.name()).isFalse();
            assertThat(ServiceProcess.serving("127.0.0.1", expert.grpcPort(), foreign.channelCredentials("placer")))
                    .as(expert.name()).isFalse();
        }
        assertThat(tls).isDirectoryContaining("glob:**/placer.crt").isDirectoryContaining("glob:**/expert-2.key");
        for (String key : List.of("ca.key", "expert-0.key", "gateway.key", "placer.key")) {
            assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(tls.resolve(key)))).as(key)
                    .isEqualTo("rw-------");
        }
        byte[] ca = Files.readAllBytes(tls.resolve("ca.crt"));
        byte[] placer = Files.readAllBytes(tls.resolve("placer.crt"));

        Placement p = mesh.placement();
        assertThat(p.getEpoch()).isEqualTo(1);
        assertThat(p.getInstancesList()).extracting(Instance::getEndpoint)
                .containsExactlyElementsOf(s.experts().stream().map(MeshState.Service::grpcEndpoint).toList());
        assertThat(p.getLayers(0).getExperts(0).getInstanceIdsCount()).isEqualTo(2);
        assertThat(log.toString()).contains("gateway SERVING at " + mesh.gatewayEndpoint());

        assertThatThrownBy(() -> MeshLauncher.up(spec(1, 1, Duration.ofSeconds(30)), new PrintWriter(log), false))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("already running");

        List<String> report = MeshLauncher.down(state, Duration.ofSeconds(20));
        assertThat(report).contains("stopped gateway (pid " + s.gateway().pid() + ")");
        assertThat(s.services()).allSatisfy(svc -> assertThat(ProcessHandle.of(svc.pid()).filter(ProcessHandle::isAlive)).isEmpty());
        assertThat(Files.readString(Path.of(s.gateway().logFile()))).contains("fake gateway stopped gracefully");
        assertThat(MeshState.file(state)).doesNotExist();

        // The next up keeps the mesh CA (clients that trust it keep working) and issues fresh certificates.
        MeshLauncher.up(spec(1, 1, Duration.ofSeconds(90)), new PrintWriter(log, true), false);
        assertThat(Files.readAllBytes(tls.resolve("ca.crt"))).isEqualTo(ca);
        assertThat(Files.readAllBytes(tls.resolve("placer.crt"))).isNotEqualTo(placer);
    }

    @Test
    void up_whenAServiceCrashes_failsNamingItsLog_andStopsWhatItStarted() throws IOException {
        assertThatThrownBy(() -> MeshLauncher.up(spec(2, 1, Duration.ofSeconds(90), "-Dfake.crash=expert-1"),
                new PrintWriter(log), false))
                .isInstanceOf(MeshException.class)
                .hasMessageContaining("expert-1 exited during startup; see " + state.resolve("logs/expert-1.log"))
                .hasMessageContaining("boom: scripted crash of expert-1");
        assertThat(pidInLog("expert-0")).satisfies(pid -> assertThat(ProcessHandle.of(pid).filter(ProcessHandle::isAlive)).isEmpty());
        assertThat(MeshState.file(state)).doesNotExist();
    }

    @Test
    void up_whenAServiceNeverReportsServing_timesOutNamingItsLog_andStopsEverything() throws IOException {
        // expert-0 is awaited first, so the deadline is spent on it whatever the machine's load
        assertThatThrownBy(() -> MeshLauncher.up(spec(1, 1, Duration.ofSeconds(10), "-Dfake.hang=expert-0"),
                new PrintWriter(log), false))
                .isInstanceOf(MeshException.class)
                .hasMessageContaining("expert-0 did not report SERVING on gRPC health")
                .hasMessageContaining(state.resolve("logs/expert-0.log").toString());
        for (String name : List.of("expert-0", "gateway")) {
            assertThat(ProcessHandle.of(pidInLog(name)).filter(ProcessHandle::isAlive)).as(name).isEmpty();
        }
        assertThat(MeshState.file(state)).doesNotExist();
    }

    @Test
    void restart_bringsAKilledInstanceBackOnTheSamePort() {
        try (RunningMesh mesh = MeshLauncher.up(spec(1, 1, Duration.ofSeconds(90)), new PrintWriter(log), true)) {
            MeshState.Service before = mesh.state().service("expert-0");
            mesh.kill("expert-0");
            assertThat(before.process()).isEmpty();
            assertThat(ServiceProcess.serving("127.0.0.1", before.grpcPort())).isFalse();
            mesh.restart("expert-0", Duration.ofSeconds(60));
            MeshState.Service after = MeshState.read(state).orElseThrow().service("expert-0");
            assertThat(after.pid()).isNotEqualTo(before.pid());
            assertThat(after.grpcPort()).isEqualTo(before.grpcPort());
            assertThat(ServiceProcess.serving("127.0.0.1", after.grpcPort(), mesh.placerCredentials())).isTrue();
        }
        assertThat(MeshState.file(state)).doesNotExist();
    }

    @Test
    void supervisedMesh_restartsAKilledService_onItsPort_recordsTheNewPid_andDownStopsEverything() throws IOException {
        MeshSpec spec = new MeshSpec(TestModels.dir(TestModels.MIXTRAL_BF16), 2, 1, state, "256m", Duration.ofSeconds(90),
                home, List.of(), MeshSpec.RestartPolicy.ALWAYS);
        RunningMesh mesh = MeshLauncher.up(spec, new PrintWriter(log, true), true);
        try {
            MeshState.Service supervisor = mesh.state().supervisor();
            assertThat(supervisor).isNotNull();
            assertThat(supervisor.process()).isPresent();
            for (String name : List.of("expert-1", "gateway")) {
                MeshState.Service before = mesh.state().service(name);
                mesh.kill(name);
                MeshState.Service after = mesh.awaitRestarted(name, before.pid(), Duration.ofSeconds(60));
                assertThat(after.pid()).isNotEqualTo(before.pid());
                assertThat(after.grpcPort()).isEqualTo(before.grpcPort());
                assertThat(after.restarts()).isEqualTo(1);
                assertThat(ServiceProcess.serving("127.0.0.1", after.grpcPort(), mesh.grpcCredentials(after))).as(name).isTrue();
            }
            assertThat(Files.readString(state.resolve("logs/supervisor.log"))).contains("restarted expert-1")
                    .contains("restarted gateway");
            MeshState recorded = MeshState.read(state).orElseThrow();
            List<String> report = MeshLauncher.down(state, Duration.ofSeconds(20));
            assertThat(report).first().asString().startsWith("stopped supervisor");
            assertThat(supervisor.process()).isEmpty();
            assertThat(recorded.services()).allSatisfy(svc -> assertThat(svc.process()).as(svc.name()).isEmpty());
            assertThat(MeshState.file(state)).doesNotExist();
        } finally {
            mesh.close();
        }
    }

    @Test
    void apiKeysOfTheCaller_reachTheGatewayAsA0600File_neverInMeshJsonOrItsEnvironment() throws IOException {
        Map<String, String> env = Map.of("MOEMESH_GATEWAY_API_KEYS", "sk-test-secret:acme",
                "MOEMESH_GATEWAY_STEP_TOKEN_BUDGET", "32");
        try (RunningMesh mesh = MeshLauncher.up(spec(1, 1, Duration.ofSeconds(90)), new PrintWriter(log, true), true, env)) {
            Path keys = state.resolve("secrets/api-keys");
            String gatewayLog = Files.readString(Path.of(mesh.state().gateway().logFile()));
            assertThat(gatewayLog).contains("env MOEMESH_GATEWAY_API_KEYS_FILE=" + keys)
                    .contains("env MOEMESH_GATEWAY_STEP_TOKEN_BUDGET=32").doesNotContain("sk-test-secret");
            assertThat(Files.readString(MeshState.file(state))).doesNotContain("sk-test-secret")
                    .contains("MOEMESH_GATEWAY_STEP_TOKEN_BUDGET");
            assertThat(Files.readString(keys)).contains("sk-test-secret acme");
            assertThat(java.nio.file.attribute.PosixFilePermissions.toString(Files.getPosixFilePermissions(keys)))
                    .isEqualTo("rw-------");
        }
    }

    private long pidInLog(String name) throws IOException {
        Path file = state.resolve("logs").resolve(name + ".log");
        await().atMost(Duration.ofSeconds(10)).until(() -> Files.exists(file) && Files.readString(file).contains(" pid "));
        Matcher m = Pattern.compile("fake " + name + " pid (\\d+)").matcher(Files.readString(file));
        assertThat(m.find()).as(file.toString()).isTrue();
        return Long.parseLong(m.group(1));
    }
}
