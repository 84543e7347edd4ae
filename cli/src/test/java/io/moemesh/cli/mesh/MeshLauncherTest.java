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
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The launcher on fake service jars: real detached JVMs, real health checks, real signals. */
class MeshLauncherTest extends MeshLauncherFixture {
    @Test
    void up_startsDetachedServicesConfiguredByEnvironment_andDownStopsThemGracefully() throws IOException {
        // what an earlier mesh's router left: its epochs go (a fresh mesh starts at 1), its route statistics stay
        Path routerDir = state.resolve("router");
        Files.createDirectories(routerDir);
        Files.writeString(routerDir.resolve("placement.json"), "{\"epoch\": \"7\"}");
        Files.writeString(routerDir.resolve("epochs.json"), "{\"highestAttempted\": 8}");
        Files.writeString(routerDir.resolve("routes.json"), "{\"version\": 1}");

        RunningMesh mesh = MeshLauncher.up(spec(3, 2, Duration.ofSeconds(90)), new PrintWriter(log, true), false);
        MeshState s = MeshState.read(state).orElseThrow();
        Path tls = state.resolve("tls").toAbsolutePath();
        assertThat(s).isEqualTo(mesh.state());
        assertThat(s.experts()).extracting(MeshState.Service::name).containsExactly("expert-0", "expert-1", "expert-2");
        assertThat(s.services()).extracting(MeshState.Service::name)
                .containsExactly("expert-0", "expert-1", "expert-2", "router", "gateway");
        assertThat(routerDir.resolve("placement.json")).doesNotExist();
        assertThat(routerDir.resolve("epochs.json")).doesNotExist();
        assertThat(routerDir.resolve("routes.json")).hasContent("{\"version\": 1}");
        for (MeshState.Service svc : s.services()) {
            assertThat(svc.process()).as(svc.name()).isPresent();
            if (svc.name().equals("router")) {
                assertThat(ServiceProcess.serving("127.0.0.1", svc.grpcPort(), mesh.grpcCredentials(svc))).isTrue();
                continue;
            }
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
        assertThat(Files.readString(Path.of(s.service("expert-1").logFile())))
                .contains("env MOEMESH_EXPERT_PLACER_IDENTITIES=router,placer")
                .contains("env MOEMESH_EXPERT_LARGE_BATCH_KERNEL_THREADS="
                        + Math.max(1, Runtime.getRuntime().availableProcessors() / 3))
                .contains("env MOEMESH_EXPERT_SMALL_BATCH_KERNEL_THREADS=0");
        assertThat(Files.readString(Path.of(s.router().logFile())))
                .contains("env MOEMESH_ROUTER_MODEL_DIR=" + TestModels.dir(TestModels.MIXTRAL_BF16).toAbsolutePath().normalize())
                .contains("env MOEMESH_ROUTER_STATE_DIR=" + state)
                .contains("env MOEMESH_ROUTER_GRPC_HOST=127.0.0.1")
                .contains("env MOEMESH_ROUTER_GRPC_PORT=" + s.router().grpcPort())
                .contains("env MOEMESH_ROUTER_REPLICAS=2")
                .contains("env MOEMESH_ROUTER_INSTANCES_FROM=" + state.resolve("placement.json"))
                .contains("env MOEMESH_ROUTER_TLS_CERT_CHAIN=" + tls.resolve("router.crt"))
                .contains("env MOEMESH_ROUTER_TLS_PRIVATE_KEY=" + tls.resolve("router.key"))
                .contains("env MOEMESH_ROUTER_TLS_CA_BUNDLE=" + tls.resolve("ca.crt"))
                .contains("env SERVER_PORT=" + s.router().httpPort())
                .contains("-Xmx" + MeshLauncher.ROUTER_HEAP);
        assertThat(mesh.routerEndpoint()).contains(s.router().grpcEndpoint());
        assertThat(Files.readString(Path.of(s.gateway().logFile())))
                .contains("env MOEMESH_GATEWAY_ROUTER_ENDPOINT=" + s.router().grpcEndpoint())
                .contains("env MOEMESH_GATEWAY_TLS_CERT_CHAIN=" + tls.resolve("gateway.crt"))
                .contains("env MOEMESH_GATEWAY_TLS_PRIVATE_KEY=" + tls.resolve("gateway.key"))
                .contains("env MOEMESH_GATEWAY_TLS_CA_BUNDLE=" + tls.resolve("ca.crt"));
        // Internal ports are mutual TLS: a plaintext health check (or one with another CA's certificate) fails.
        CertificateDirectory foreign = CertificateDirectory.create(tmp.resolve("foreign"), List.of("placer"));
        List<MeshState.Service> internal = new java.util.ArrayList<>(s.experts());
        internal.add(s.router());
        for (MeshState.Service expert : internal) {
            assertThat(ServiceProcess.serving("127.0.0.1", expert.grpcPort())).as(expert.name()).isFalse();
            assertThat(ServiceProcess.serving("127.0.0.1", expert.grpcPort(), foreign.channelCredentials("placer")))
                    .as(expert.name()).isFalse();
        }
        assertThat(tls).isDirectoryContaining("glob:**/placer.crt").isDirectoryContaining("glob:**/expert-2.key");
        for (String key : List.of("ca.key", "expert-0.key", "gateway.key", "placer.key", "router.key")) {
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
        assertThat(log.toString()).contains("gateway SERVING at " + mesh.gatewayEndpoint())
                .contains("router SERVING at " + s.router().grpcEndpoint());

        assertThatThrownBy(() -> MeshLauncher.up(spec(1, 1, Duration.ofSeconds(30)), new PrintWriter(log), false))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("already running");

        List<String> report = MeshLauncher.down(state, Duration.ofSeconds(20));
        assertThat(report).contains("stopped gateway (pid " + s.gateway().pid() + ")")
                .contains("stopped router (pid " + s.router().pid() + ")");
        assertThat(s.services()).allSatisfy(svc -> assertThat(ProcessHandle.of(svc.pid()).filter(ProcessHandle::isAlive)).isEmpty());
        assertThat(Files.readString(Path.of(s.gateway().logFile()))).contains("fake gateway stopped gracefully");
        assertThat(MeshState.file(state)).doesNotExist();

        // The next up keeps the mesh CA (clients that trust it keep working) and issues fresh certificates.
        MeshLauncher.up(spec(1, 1, Duration.ofSeconds(90)), new PrintWriter(log, true), false);
        assertThat(Files.readAllBytes(tls.resolve("ca.crt"))).isEqualTo(ca);
        assertThat(Files.readAllBytes(tls.resolve("placer.crt"))).isNotEqualTo(placer);
    }

    @Test
    void up_overUnixSockets_placementCarriesUnixEndpoints_andEachInstanceAndTheKvCacheListenOnASocketToo()
            throws IOException {
        org.junit.jupiter.api.Assumptions.assumeTrue(io.moemesh.service.grpc.InstanceEndpoint.domainSocketsAvailable());
        try (RunningMesh mesh = MeshLauncher.up(spec(2, 1, Duration.ofSeconds(90)).withKvCache()
                        .withTransport(MeshTransport.UNIX), new PrintWriter(log, true), true)) {
            Path sockets = state.toAbsolutePath().resolve("sockets");
            assertThat(mesh.placement().getInstancesList()).extracting(Instance::getEndpoint).containsExactly(
                    "unix://" + sockets.resolve("expert-0.sock"), "unix://" + sockets.resolve("expert-1.sock"));
            assertThat(mesh.state().experts().getFirst().environment())
                    .containsEntry("MOEMESH_EXPERT_GRPC_UNIX_SOCKET", sockets.resolve("expert-0.sock").toString());
            // the TCP port stays: readiness and tools use it
            assertThat(mesh.state().experts().getFirst().grpcPort()).isPositive();
            // the gateway restores from the kvcache-service over its socket in the same directory
            MeshState.Service kv = mesh.state().kvcache();
            assertThat(kv.environment())
                    .containsEntry("MOEMESH_KVCACHE_GRPC_UNIX_SOCKET", sockets.resolve("kvcache.sock").toString());
            assertThat(mesh.kvcacheEndpoint()).contains("unix://" + sockets.resolve("kvcache.sock"));
            assertThat(mesh.state().gateway().environment())
                    .containsEntry("MOEMESH_GATEWAY_KVCACHE_ENDPOINT", "unix://" + sockets.resolve("kvcache.sock"));
            assertThat(kv.grpcPort()).isPositive();
        }
    }

    /**
     * The state directory holds every tenant's K/V (kvcache/), the mesh CA's key (tls/), the API keys and the logs:
     * up creates it, a missing parent too, and each directory the mesh writes to, owner-only before anything is in it.
     */
    @Test
    void up_createsTheStateDirectoryAndTheDirectoriesInIt_ownerOnly() throws IOException {
        state = tmp.resolve("deep").resolve("state");
        try (RunningMesh mesh = MeshLauncher.up(spec(1, 1, Duration.ofSeconds(90)).withKvCache(),
                new PrintWriter(log, true), true)) {
            for (Path dir : List.of(tmp.resolve("deep"), state, state.resolve("tls"), state.resolve("logs"),
                    state.resolve("native-cache"), state.resolve("native-cache/gateway"),
                    state.resolve("native-cache/expert-0"), state.resolve("native-cache/router"),
                    state.resolve("native-cache/kvcache"), state.resolve("router"), state.resolve("kvcache"))) {
                assertThat(java.nio.file.attribute.PosixFilePermissions.toString(Files.getPosixFilePermissions(dir)))
                        .as(dir.toString()).isEqualTo("rwx------");
            }
        }
    }

    @Test
    void up_withoutRouter_startsNone_andTheGatewayFollowsNoRouter() throws IOException {
        try (RunningMesh mesh = MeshLauncher.up(spec(1, 1, Duration.ofSeconds(90)).withoutRouter(),
                new PrintWriter(log, true), true)) {
            MeshState s = mesh.state();
            assertThat(s.router()).isNull();
            assertThat(mesh.routerEndpoint()).isEmpty();
            assertThat(s.services()).extracting(MeshState.Service::name).containsExactly("expert-0", "gateway");
            assertThat(Files.readString(Path.of(s.gateway().logFile()))).doesNotContain("ROUTER_ENDPOINT");
            assertThat(state.resolve("tls/router.crt")).doesNotExist();
        }
    }

    static Stream<Arguments> hostShares() {
        String share = Integer.toString(Math.max(1, Runtime.getRuntime().availableProcessors() / 2));
        return Stream.of(
                Arguments.of(2, Map.of(), share, share, "balanced-experts",
                        "every instance holds every expert: both batch sizes keep to the instance's share"),
                Arguments.of(1, Map.of(), "0", share, "balanced-experts",
                        "experts split over the instances: a token's experts may share one, small batches every core"),
                Arguments.of(2, Map.of("MOEMESH_EXPERT_SMALL_BATCH_KERNEL_THREADS", "3",
                        "MOEMESH_EXPERT_LARGE_BATCH_KERNEL_THREADS", "0",
                        "MOEMESH_GATEWAY_DISPATCH_REPLICA_PICKER", "prefer-visited"), "3", "0", "prefer-visited",
                        "the caller's settings win"));
    }

    @ParameterizedTest(name = "{5}")
    @MethodSource("hostShares")
    void twoInstances_keepToTheirShareOfTheHost_gatewayBalancesWholeExperts(int replicas, Map<String, String> env,
                                                                             String small, String large, String picker,
                                                                             String rule) throws IOException {
        try (RunningMesh mesh = MeshLauncher.up(spec(2, replicas, Duration.ofSeconds(90)).withoutRouter(),
                new PrintWriter(log, true), true, env)) {
            for (MeshState.Service expert : mesh.state().experts()) {
                assertThat(Files.readString(Path.of(expert.logFile()))).as(expert.name())
                        .contains("env MOEMESH_EXPERT_SMALL_BATCH_KERNEL_THREADS=" + small + "\n")
                        .contains("env MOEMESH_EXPERT_LARGE_BATCH_KERNEL_THREADS=" + large + "\n");
            }
            assertThat(Files.readString(Path.of(mesh.state().gateway().logFile())))
                    .contains("env MOEMESH_GATEWAY_DISPATCH_REPLICA_PICKER=" + picker + "\n");
        }
    }

    /**
     * A mesh.json of a launcher from before the router and the kvcache-service (no "router" nor "kvcache" member)
     * still stops its services.
     */
    @Test
    void down_readsAMeshJsonWrittenBeforeThereWasARouter() throws IOException {
        Files.createDirectories(state);
        Files.writeString(MeshState.file(state), """
                {"model": "/m", "replicas": 1, "epoch": 1, "placementFile": "/m/placement.json",
                 "experts": [{"name": "expert-0", "pid": 2147483647, "startedAt": "", "grpcPort": 1, "httpPort": 2,
                              "logFile": "/tmp/e.log", "command": ["java"], "environment": {}, "managementPort": 5,
                              "restarts": 0}],
                 "gateway": {"name": "gateway", "pid": 2147483646, "startedAt": "", "grpcPort": 3, "httpPort": 4,
                             "logFile": "/tmp/g.log", "command": ["java"], "environment": {}, "managementPort": 6,
                             "restarts": 0},
                 "supervisor": null}
                """);
        MeshState old = MeshState.read(state).orElseThrow();
        assertThat(old.router()).isNull();
        assertThat(old.kvcache()).isNull();
        assertThat(old.services()).extracting(MeshState.Service::name).containsExactly("expert-0", "gateway");
        assertThat(MeshLauncher.down(state, Duration.ofSeconds(5)))
                .containsExactly("expert-0 was not running", "gateway was not running");
        assertThat(MeshState.file(state)).doesNotExist();
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
        for (String name : List.of("expert-0", "router", "gateway")) {
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
                home, List.of(), MeshSpec.RestartPolicy.ALWAYS).withKvCache();
        RunningMesh mesh = MeshLauncher.up(spec, new PrintWriter(log, true), true);
        try {
            MeshState.Service supervisor = mesh.state().supervisor();
            assertThat(supervisor).isNotNull();
            assertThat(supervisor.process()).isPresent();
            for (String name : List.of("expert-1", "router", "kvcache", "gateway")) {
                MeshState.Service before = mesh.state().service(name);
                mesh.kill(name);
                MeshState.Service after = mesh.awaitRestarted(name, before.pid(), Duration.ofSeconds(60));
                assertThat(after.pid()).isNotEqualTo(before.pid());
                assertThat(after.grpcPort()).isEqualTo(before.grpcPort());
                assertThat(after.restarts()).isEqualTo(1);
                assertThat(ServiceProcess.serving("127.0.0.1", after.grpcPort(), mesh.grpcCredentials(after))).as(name).isTrue();
            }
            assertThat(Files.readString(state.resolve("logs/supervisor.log"))).contains("restarted expert-1")
                    .contains("restarted router").contains("restarted kvcache").contains("restarted gateway");
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
