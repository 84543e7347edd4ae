package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.golden.TestModels;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The kvcache-service under the launcher: its endpoint, its SSD directory across down and up, its capacities. */
class MeshLauncherKvCacheTest extends MeshLauncherFixture {
    @Test
    void up_withKvCache_startsItOnLoopbackOverMutualTls_withItsSsdDirInTheStateDir_andTheGatewayGetsItsEndpoint()
            throws IOException {
        Path stopLog = tmp.resolve("stop-order");
        RunningMesh mesh = MeshLauncher.up(spec(2, 1, Duration.ofSeconds(90), "-Dfake.stop-log=" + stopLog)
                .withKvCache(), new PrintWriter(log, true), false);
        MeshState s = mesh.state();
        Path tls = state.resolve("tls").toAbsolutePath();
        assertThat(s.services()).extracting(MeshState.Service::name)
                .containsExactly("expert-0", "expert-1", "router", "kvcache", "gateway");
        MeshState.Service kv = s.kvcache();
        assertThat(mesh.kvcacheEndpoint()).contains("127.0.0.1:" + kv.grpcPort());
        assertThat(ServiceProcess.serving("127.0.0.1", kv.grpcPort(), mesh.grpcCredentials(kv))).isTrue();
        assertThat(ServiceProcess.serving("127.0.0.1", kv.grpcPort())).as("plaintext").isFalse();
        assertThat(Files.readString(Path.of(kv.logFile())))
                .contains("env MOEMESH_KVCACHE_MODEL_DIRS=" + TestModels.dir(TestModels.MIXTRAL_BF16).toAbsolutePath().normalize())
                .contains("env MOEMESH_KVCACHE_SSD_DIR=" + state.resolve("kvcache"))
                .contains("env MOEMESH_KVCACHE_BLOCK_TOKENS=16")
                .contains("env MOEMESH_KVCACHE_DRAM_BYTES=268435456")
                .contains("env MOEMESH_KVCACHE_SSD_BYTES=4294967296")
                .contains("env MOEMESH_KVCACHE_GRPC_HOST=127.0.0.1")
                .contains("env MOEMESH_KVCACHE_GRPC_PORT=" + kv.grpcPort())
                .doesNotContain("MOEMESH_KVCACHE_GRPC_UNIX_SOCKET")
                .contains("env MOEMESH_KVCACHE_TLS_CERT_CHAIN=" + tls.resolve("kvcache.crt"))
                .contains("env MOEMESH_KVCACHE_TLS_PRIVATE_KEY=" + tls.resolve("kvcache.key"))
                .contains("env MOEMESH_KVCACHE_TLS_CA_BUNDLE=" + tls.resolve("ca.crt"))
                .contains("env SERVER_ADDRESS=127.0.0.1")
                .contains("-Xmx512m");
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(tls.resolve("kvcache.key"))))
                .isEqualTo("rw-------");
        assertThat(Files.readString(Path.of(s.gateway().logFile())))
                .contains("env MOEMESH_GATEWAY_KVCACHE_ENDPOINT=" + kv.grpcEndpoint())
                .contains("env MOEMESH_GATEWAY_KV_BLOCK_TOKENS=16");
        assertThat(log.toString()).contains("kvcache SERVING at " + kv.grpcEndpoint());

        assertThat(MeshLauncher.down(state, Duration.ofSeconds(20))).contains("stopped kvcache (pid " + kv.pid() + ")");
        assertThat(kv.process()).isEmpty();
        assertThat(Files.readAllLines(stopLog)).as("the order the services got SIGTERM in")
                .startsWith("gateway", "kvcache").hasSize(5);
    }

    @Test
    void kvcacheSsdDir_isKeptAcrossDownAndUp() throws IOException {
        MeshLauncher.up(spec(1, 1, Duration.ofSeconds(90)).withKvCache(), new PrintWriter(log, true), false);
        Path segment = state.resolve("kvcache").resolve("fake-segment");
        assertThat(Files.readAllLines(segment)).hasSize(1);
        MeshLauncher.down(state, Duration.ofSeconds(20));
        assertThat(segment).exists();
        MeshLauncher.up(spec(1, 1, Duration.ofSeconds(90)).withKvCache(), new PrintWriter(log, true), false);
        assertThat(Files.readAllLines(segment)).as("both runs' lines: the directory survived down and up").hasSize(2);
    }

    @Test
    void callersKvCacheCapacities_winOverTheDefaults_andTheHeapFollowsTheDramTier() throws IOException {
        Map<String, String> env = Map.of("MOEMESH_KVCACHE_DRAM_BYTES", Long.toString(64L << 20),
                "MOEMESH_KVCACHE_SSD_BYTES", "1048576", "MOEMESH_KVCACHE_FSYNC", "always");
        try (RunningMesh mesh = MeshLauncher.up(spec(1, 1, Duration.ofSeconds(90)).withoutRouter().withKvCache(),
                new PrintWriter(log, true), true, env)) {
            assertThat(Files.readString(Path.of(mesh.state().kvcache().logFile())))
                    .contains("env MOEMESH_KVCACHE_DRAM_BYTES=67108864").contains("env MOEMESH_KVCACHE_SSD_BYTES=1048576")
                    .contains("env MOEMESH_KVCACHE_FSYNC=always").contains("-Xmx320m");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"256MB", "-1", "0", "", "1e9"})
    void kvcacheDramBytes_thatIsNotAPositiveByteCount_isRefusedNamingTheVariable(String value) {
        assertThatThrownBy(() -> MeshLauncher.up(spec(1, 1, Duration.ofSeconds(30)).withKvCache(),
                new PrintWriter(log), false, Map.of("MOEMESH_KVCACHE_DRAM_BYTES", value)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("MOEMESH_KVCACHE_DRAM_BYTES must be a positive number of bytes, got " + value);
        assertThat(MeshState.file(state)).doesNotExist();
    }
}
