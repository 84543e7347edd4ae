package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.InsecureChannelCredentials;
import io.grpc.InsecureServerCredentials;
import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.grpc.InstanceEndpoint;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class SocketDirectoryTest {
    private static final List<String> NAMES = List.of("expert-0", "expert-1", "expert-10");
    @TempDir
    Path tmp;
    private final StringWriter log = new StringWriter();

    @Test
    void shortStateDir_keepsTheSocketsInItsSocketsFolder_ownerOnly_andSaysNothing() throws IOException {
        Path dir = SocketDirectory.choose(tmp.resolve("state"), NAMES, tmp.resolve("short"), new PrintWriter(log));
        assertThat(dir).isEqualTo(tmp.resolve("state").resolve("sockets"));
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(dir))).isEqualTo("rwx------");
        assertThat(log.toString()).isEmpty();
    }

    /**
     * A state directory under "~/My Projects" (or with #, %, ?) kept its sockets in its own sockets/ folder, but the
     * unix:// endpoints up wrote into the placement could not be dialled: the router never published epoch 1 and the
     * gateway refused the placement. Here a real server listens on the socket and the endpoint up builds reaches it.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"my mesh", "no#1", "100%", "why?"})
    void stateDirThatAUriMustEncode_givesSocketEndpointsThatCanBeDialled(String name) {
        Assumptions.assumeTrue(InstanceEndpoint.domainSocketsAvailable(), "no epoll here");
        Path sockets = SocketDirectory.choose(tmp.resolve(name), List.of("expert-0"), tmp.resolve("short"),
                new PrintWriter(log));
        assertThat(sockets).isEqualTo(tmp.resolve(name).resolve("sockets"));
        Path socket = sockets.resolve("expert-0.sock");
        GrpcServerLifecycle server = new GrpcServerLifecycle("expert-0", "127.0.0.1", 0,
                InsecureServerCredentials.create(), 1 << 20, Duration.ofSeconds(1), List.of(), List.of())
                .alsoOnUnixSocket(socket, "moemesh.expert.grpc-unix-socket");
        server.start();
        try {
            // what MeshLauncher writes into the placement, and the router and the gateway dial
            ManagedChannel ch = InstanceEndpoint.parse(InstanceEndpoint.unix(socket).target())
                    .channelBuilder(InsecureChannelCredentials.create()).build();
            try {
                assertThat(HealthGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS)
                        .check(HealthCheckRequest.getDefaultInstance()).getStatus()).isEqualTo(ServingStatus.SERVING);
            } finally {
                ch.shutdownNow();
            }
        } finally {
            server.stop();
        }
    }

    @Test
    void stateDirTooDeepForSunPath_putsTheSocketsInAShortOwnerOnlyDir_sameForTheSameStateDir_andSaysSo()
            throws IOException {
        Path deep = tmp.resolve("a".repeat(50)).resolve("b".repeat(50)).resolve("state");
        Path shortRoot = tmp.resolve("short");
        Path dir = SocketDirectory.choose(deep, NAMES, shortRoot, new PrintWriter(log));
        assertThat(dir.getParent()).isEqualTo(shortRoot);
        assertThat(dir.getFileName().toString()).startsWith("moemesh-" + SocketDirectory.uid() + "-");
        assertThat(dir.resolve("expert-10.sock").toString().getBytes(StandardCharsets.UTF_8).length)
                .isLessThanOrEqualTo(InstanceEndpoint.MAX_SOCKET_PATH_BYTES);
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(dir))).isEqualTo("rwx------");
        assertThat(log.toString()).contains("longer than 107 bytes").contains(dir.toString());
        // a restart of the same mesh finds the same directory; another state dir gets another one
        assertThat(SocketDirectory.choose(deep, NAMES, shortRoot, new PrintWriter(log))).isEqualTo(dir);
        assertThat(SocketDirectory.choose(deep.resolveSibling("other"), NAMES, shortRoot, new PrintWriter(log)))
                .isNotEqualTo(dir);
    }

    @Test
    void down_removesTheEmptyShortDirItCreated_butKeepsOneWithASocketLeftInIt() throws IOException {
        Path deep = tmp.resolve("a".repeat(50)).resolve("b".repeat(50)).resolve("state");
        Path shortRoot = tmp.resolve("short");
        Path dir = SocketDirectory.choose(deep, NAMES, shortRoot, new PrintWriter(log));
        Path left = Files.writeString(dir.resolve("expert-0.sock"), "");
        assertThat(SocketDirectory.removeEmptyFallback(deep, shortRoot)).isEmpty();
        assertThat(dir).isDirectory();
        Files.delete(left);
        assertThat(SocketDirectory.removeEmptyFallback(deep, shortRoot)).hasValueSatisfying(line ->
                assertThat(line).contains(dir.toString()));
        assertThat(dir).doesNotExist();
        assertThat(shortRoot).isDirectory();
        // nothing there (a state dir whose sockets never needed the short directory): nothing to do
        assertThat(SocketDirectory.removeEmptyFallback(tmp.resolve("state"), shortRoot)).isEmpty();
    }

    @Test
    void down_neverRemovesAShortDirThatIsALink() throws IOException {
        Path deep = tmp.resolve("a".repeat(50)).resolve("b".repeat(50)).resolve("state");
        Path shortRoot = Files.createDirectories(tmp.resolve("short"));
        Path target = Files.createDirectories(tmp.resolve("elsewhere"));
        Path link = Files.createSymbolicLink(SocketDirectory.fallback(deep, shortRoot), target);
        assertThat(SocketDirectory.removeEmptyFallback(deep, shortRoot)).isEmpty();
        assertThat(link).isSymbolicLink();
        assertThat(target).isDirectory();
    }

    @Test
    void existingSocketDirWithAWiderMode_isNarrowedToOwnerOnly() throws IOException {
        Path sockets = Files.createDirectories(tmp.resolve("state").resolve("sockets"));
        Files.setPosixFilePermissions(sockets, PosixFilePermissions.fromString("rwxr-xr-x"));
        SocketDirectory.choose(tmp.resolve("state"), NAMES, tmp.resolve("short"), new PrintWriter(log));
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(sockets))).isEqualTo("rwx------");
    }

    @Test
    void aFileWhereTheSocketDirGoes_isRefused() throws IOException {
        Files.createDirectories(tmp.resolve("state"));
        Files.writeString(tmp.resolve("state").resolve("sockets"), "not a dir");
        assertThatThrownBy(() -> SocketDirectory.choose(tmp.resolve("state"), NAMES, tmp.resolve("short"),
                new PrintWriter(log))).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("is not a directory of this user").hasMessageContaining("--transport tcp");
    }

    @Test
    void transportOption_takesTcpOrUnix_only() {
        assertThat(MeshTransport.parse("TCP")).isEqualTo(MeshTransport.TCP);
        assertThatThrownBy(() -> MeshTransport.parse("udp")).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("--transport must be tcp or unix");
    }
}
