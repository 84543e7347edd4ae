package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.assertj.core.api.SoftAssertions;
import org.junit.jupiter.api.Test;

/**
 * A caller's settings reach the services, but what the mesh decides (ports, ids, files, the KV block size, TLS) wins
 * over them under every name Spring binds: a service reads {@code MOEMESH_GATEWAY_KVBLOCKTOKENS} before
 * {@code MOEMESH_GATEWAY_KV_BLOCK_TOKENS}, so the mesh's value under the second name alone would lose.
 */
class MeshLauncherSettingsTest extends MeshLauncherFixture {

    @Test
    void meshDecidedSettings_winOverTheCallersOtherSpellings_callersDefaultsOverridesStand() throws IOException {
        Map<String, String> callerEnv = Map.ofEntries(
                Map.entry("MOEMESH_GATEWAY_KVBLOCKTOKENS", "32"),
                Map.entry("MOEMESH_GATEWAY_GRPCPORT", "1"),
                Map.entry("MOEMESH_GATEWAY_PLACEMENTFILE", "/elsewhere/placement.json"),
                Map.entry("MOEMESH_GATEWAY_KVCACHE_ENDPOINT", "10.0.0.1:9400"),
                Map.entry("MOEMESH_GATEWAY_TLS_CERTCHAIN", "/elsewhere/gateway.crt"),
                Map.entry("MOEMESH_EXPERT_GRPCPORT", "1"),
                Map.entry("MOEMESH_EXPERT_INSTANCEID", "expert-9"),
                Map.entry("MOEMESH_EXPERT_TLS_MODE", "plaintext"),
                Map.entry("MOEMESH_ROUTER_STATEDIR", "/elsewhere"),
                Map.entry("MOEMESH_ROUTER_GRPCPORT", "1"),
                Map.entry("MOEMESH_KVCACHE_BLOCKTOKENS", "32"),
                // defaults of up that the caller may override, under another spelling than up's
                Map.entry("MOEMESH_GATEWAY_DISPATCH_REPLICAPICKER", "prefer-visited"),
                Map.entry("MOEMESH_EXPERT_SMALLBATCHKERNELTHREADS", "3"));
        try (RunningMesh mesh = MeshLauncher.up(spec(2, 1, Duration.ofSeconds(90)).withKvCache(),
                new PrintWriter(log, true), true, callerEnv)) {
            MeshState s = mesh.state();
            Map<String, String> gateway = s.gateway().environment();
            SoftAssertions soft = new SoftAssertions();
            soft.assertThat(SpringEnvironment.value(gateway, "moemesh.gateway.kv-block-tokens")).contains("16");
            soft.assertThat(SpringEnvironment.value(gateway, "moemesh.gateway.grpc-port"))
                    .contains(Integer.toString(s.gateway().grpcPort()));
            soft.assertThat(SpringEnvironment.value(gateway, "moemesh.gateway.placement-file"))
                    .contains(state.resolve("placement.json").toString());
            soft.assertThat(SpringEnvironment.value(gateway, "moemesh.gateway.kvcache.endpoint"))
                    .contains(mesh.kvcacheEndpoint().orElseThrow());
            soft.assertThat(SpringEnvironment.value(gateway, "moemesh.gateway.tls.cert-chain"))
                    .contains(state.resolve("tls/gateway.crt").toAbsolutePath().toString());
            soft.assertThat(SpringEnvironment.value(gateway, "moemesh.gateway.dispatch.replica-picker"))
                    .contains("prefer-visited");
            soft.assertThat(gateway).as("up's default is not added beside the caller's setting")
                    .doesNotContainKey("MOEMESH_GATEWAY_DISPATCH_REPLICA_PICKER");
            for (MeshState.Service expert : s.experts()) {
                Map<String, String> env = expert.environment();
                soft.assertThat(SpringEnvironment.value(env, "moemesh.expert.grpc-port")).as(expert.name())
                        .contains(Integer.toString(expert.grpcPort()));
                soft.assertThat(SpringEnvironment.value(env, "moemesh.expert.instance-id")).contains(expert.name());
                soft.assertThat(SpringEnvironment.value(env, "moemesh.expert.tls.mode")).contains("mtls");
                soft.assertThat(SpringEnvironment.value(env, "moemesh.expert.small-batch-kernel-threads"))
                        .contains("3");
                soft.assertThat(env).doesNotContainKey("MOEMESH_EXPERT_SMALL_BATCH_KERNEL_THREADS");
            }
            Map<String, String> router = s.router().environment();
            soft.assertThat(SpringEnvironment.value(router, "moemesh.router.state-dir")).contains(state.toString());
            soft.assertThat(SpringEnvironment.value(router, "moemesh.router.grpc-port"))
                    .contains(Integer.toString(s.router().grpcPort()));
            soft.assertThat(SpringEnvironment.value(s.kvcache().environment(), "moemesh.kvcache.block-tokens"))
                    .contains("16");
            // what the gateway's process saw (FakeServiceMain prints its MOEMESH_* variables)
            soft.assertThat(Files.readString(Path.of(s.gateway().logFile())))
                    .contains("env MOEMESH_GATEWAY_KV_BLOCK_TOKENS=16\n")
                    .doesNotContain("env MOEMESH_GATEWAY_KVBLOCKTOKENS=")
                    .doesNotContain("env MOEMESH_GATEWAY_GRPCPORT=");
            soft.assertAll();
        }
    }

    /**
     * A service's process inherits this one's environment: an exported other spelling of a setting its environment
     * has must not reach it, whatever case it is in, nor any other variable that configures a service (its own
     * environment already carries the caller's settings it passes on); unrelated variables still do, secrets aside.
     */
    @Test
    void childEnvironment_dropsEveryInheritedServiceSetting_keepsTheRest() {
        Map<String, String> inherited = Map.of("MOEMESH_GATEWAY_KVBLOCKTOKENS", "32",
                "moemesh_gateway_kv_block_tokens", "8", "MOEMESH_GATEWAY_MICROBATCHES", "4", "otel_service_name", "x",
                "spring.profiles.active", "p", "GITHUB_TOKEN", "t", "PATH", "/bin", "JAVA_HOME", "/jdk");
        assertThat(ServiceProcess.environment(inherited, Map.of("MOEMESH_GATEWAY_KV_BLOCK_TOKENS", "16")))
                .containsOnly(Map.entry("MOEMESH_GATEWAY_KV_BLOCK_TOKENS", "16"), Map.entry("PATH", "/bin"),
                        Map.entry("JAVA_HOME", "/jdk"));
    }

    /**
     * Under the TCP transport {@code up} removes the caller's expert and kvcache sockets from their environments (one
     * socket for every instance: the second to start could not bind it); the exported variable must not come back
     * through the environment the process inherits.
     */
    @Test
    void exportedSocketUnderTcpTransport_reachesNoService() {
        Map<String, String> callerEnv = Map.of("MOEMESH_EXPERT_GRPC_UNIX_SOCKET", "/tmp/e.sock",
                "moemesh_kvcache_grpcunixsocket", "/tmp/k.sock", "MOEMESH_EXPERT_MAX_BATCH_TOKENS", "64", "PATH", "/bin");
        MeshSpec spec = spec(2, 1, Duration.ofSeconds(60));
        Map<String, String> settings = MeshSecrets.settings(callerEnv);
        Map<String, String> expert = ServiceProcess.environment(callerEnv, MeshEnvironments.expert(settings, spec,
                "expert-0", 0, 9000, null, state.resolve("placement.json"), state.resolve("native")));
        Map<String, String> kvcache = ServiceProcess.environment(callerEnv,
                KvCacheSettings.environment(settings, spec, 9400, null));
        assertThat(SpringEnvironment.find(expert, "moemesh.expert.grpc-unix-socket")).isEmpty();
        assertThat(SpringEnvironment.find(kvcache, KvCacheSettings.UNIX_SOCKET_PROPERTY)).isEmpty();
        assertThat(expert).containsEntry("MOEMESH_EXPERT_MAX_BATCH_TOKENS", "64").containsEntry("PATH", "/bin");
    }

    /**
     * {@code --no-router} and {@code --no-kvcache} leave the gateway without those services: a caller's exported
     * endpoint (another mesh's, whose peer-uid socket would even accept this gateway) must not reach it under any
     * spelling, nor come back through the environment the process inherits.
     */
    @Test
    void noRouterNoKvCache_callersEndpointsReachNoGateway() {
        Map<String, String> callerEnv = Map.of("MOEMESH_GATEWAY_KVCACHE_ENDPOINT", "10.0.0.1:9400",
                "moemesh_gateway_router_endpoint", "10.0.0.1:9300", "MOEMESH_GATEWAY_MICROBATCHES", "4",
                "PATH", "/bin");
        Map<String, String> settings = MeshSecrets.settings(callerEnv);
        Map<String, String> gateway = ServiceProcess.environment(callerEnv, MeshEnvironments.gateway(settings,
                spec(2, 1, Duration.ofSeconds(60)), null, 9000, state.resolve("placement.json"),
                state.resolve("native"), null, null));
        assertThat(SpringEnvironment.find(gateway, "moemesh.gateway.kvcache.endpoint")).isEmpty();
        assertThat(SpringEnvironment.find(gateway, "moemesh.gateway.router.endpoint")).isEmpty();
        assertThat(gateway).containsEntry("MOEMESH_GATEWAY_MICROBATCHES", "4").containsEntry("PATH", "/bin");
    }
}
