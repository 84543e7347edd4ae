package io.moemesh.service.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.grpc.ChannelCredentials;
import io.grpc.InsecureChannelCredentials;
import io.grpc.InsecureServerCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ServerCredentials;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.reflection.v1.ServerReflectionGrpc;
import io.grpc.reflection.v1.ServerReflectionRequest;
import io.grpc.reflection.v1.ServerReflectionResponse;
import io.grpc.stub.StreamObserver;
import io.moemesh.service.tls.CertificateDirectory;
import io.moemesh.service.tls.MeshCredentials;
import io.moemesh.service.tls.PeerIdentityInterceptor;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** A real gRPC server on a real Unix domain socket (epoll), next to its TCP port. */
class UnixSocketServerTest {
    private static final String SETTING = "test.grpc-unix-socket";
    private static final String SECURITY = "test.unix-socket-security";
    @TempDir
    Path dir;
    private final List<GrpcServerLifecycle> servers = new ArrayList<>();
    private final List<ManagedChannel> channels = new ArrayList<>();

    @BeforeEach
    void epoll() {
        assumeTrue(InstanceEndpoint.domainSocketsAvailable(), "Netty's epoll transport is not available here");
    }

    @AfterEach
    void stop() {
        channels.forEach(ManagedChannel::shutdownNow);
        servers.forEach(GrpcServerLifecycle::stop);
    }

    private GrpcServerLifecycle start(Path socket, ServerCredentials credentials) {
        return start(socket, credentials, UnixSocketSecurity.PEER_UID);
    }

    private GrpcServerLifecycle start(Path socket, ServerCredentials credentials, UnixSocketSecurity security) {
        GrpcServerLifecycle s = new GrpcServerLifecycle("test", "127.0.0.1", 0, credentials, 1 << 20,
                Duration.ofSeconds(1), List.of(), List.of(new PeerIdentityInterceptor()))
                .alsoOnUnixSocket(socket, SETTING, security, SECURITY);
        s.start();
        servers.add(s);
        return s;
    }

    private ServingStatus health(Path socket, ChannelCredentials credentials) {
        return health(socket, credentials, UnixSocketSecurity.PEER_UID);
    }

    private ServingStatus health(Path socket, ChannelCredentials credentials, UnixSocketSecurity security) {
        ManagedChannel ch = InstanceEndpoint.unix(socket).channelBuilder(credentials, security).build();
        channels.add(ch);
        return HealthGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS)
                .check(HealthCheckRequest.getDefaultInstance()).getStatus();
    }

    @Test
    void unixSocket_servesHealthAndReflection_andTheTcpPortStays() throws Exception {
        Path socket = dir.resolve("s.sock");
        GrpcServerLifecycle s = start(socket, InsecureServerCredentials.create());
        assertThat(health(socket, InsecureChannelCredentials.create())).isEqualTo(ServingStatus.SERVING);
        assertThat(s.port()).isPositive();
        ManagedChannel tcp = InstanceEndpoint.parse("127.0.0.1:" + s.port()).channelBuilder(
                InsecureChannelCredentials.create()).build();
        channels.add(tcp);
        assertThat(HealthGrpc.newBlockingStub(tcp).check(HealthCheckRequest.getDefaultInstance()).getStatus())
                .isEqualTo(ServingStatus.SERVING);

        CompletableFuture<ServerReflectionResponse> answer = new CompletableFuture<>();
        StreamObserver<ServerReflectionRequest> req = ServerReflectionGrpc.newStub(channels.getFirst())
                .serverReflectionInfo(new StreamObserver<>() {
                    @Override
                    public void onNext(ServerReflectionResponse r) {
                        answer.complete(r);
                    }

                    @Override
                    public void onError(Throwable t) {
                        answer.completeExceptionally(t);
                    }

                    @Override
                    public void onCompleted() {
                    }
                });
        req.onNext(ServerReflectionRequest.newBuilder().setListServices("").build());
        assertThat(answer.get(10, TimeUnit.SECONDS).getListServicesResponse().getServiceList())
                .anySatisfy(svc -> assertThat(svc.getName()).isEqualTo("grpc.health.v1.Health"));
        req.onCompleted();

        s.stop();
        assertThat(socket).doesNotExist();
    }

    /**
     * A socket path that a URI must percent-encode (a state directory under "My Projects") is served and dialled: the
     * endpoint's target is encoded, and grpc-java's unix name resolver decodes it back to the path.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"my mesh", "no#1", "100%", "why?"})
    void socketPathThatAUriMustEncode_isServedAndDialled(String directory) throws IOException {
        Path socket = Files.createDirectory(dir.resolve(directory),
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------"))).resolve("e.sock");
        start(socket, InsecureServerCredentials.create());
        assertThat(health(socket, InsecureChannelCredentials.create())).isEqualTo(ServingStatus.SERVING);
    }

    @Test
    void tlsMode_keepsMutualTlsOnTheSocket_clientWithoutCertificateIsRefused() {
        CertificateDirectory certs = CertificateDirectory.create(dir.resolve("tls"), List.of("server", "client"));
        Path socket = dir.resolve("m.sock");
        try (MeshCredentials server = MeshCredentials.load(certs.settings("server"), "test.tls");
             MeshCredentials client = MeshCredentials.load(certs.settings("client"), "test.tls")) {
            start(socket, server.server(), UnixSocketSecurity.TLS);
            assertThat(health(socket, client.channel(), UnixSocketSecurity.TLS)).isEqualTo(ServingStatus.SERVING);
            assertThatThrownBy(() -> health(socket, InsecureChannelCredentials.create(), UnixSocketSecurity.TLS))
                    .isInstanceOf(StatusRuntimeException.class);
        }
    }

    @Test
    void peerUidMode_servesPlaintextToThisUid_evenWhenTheTcpPortIsMutualTls() {
        CertificateDirectory certs = CertificateDirectory.create(dir.resolve("tls"), List.of("server", "client"));
        Path socket = dir.resolve("p.sock");
        try (MeshCredentials server = MeshCredentials.load(certs.settings("server"), "test.tls")) {
            start(socket, server.server());
            assertThat(health(socket, InsecureChannelCredentials.create())).isEqualTo(ServingStatus.SERVING);
        }
    }

    @Test
    void mismatch_clientTlsOnAPeerUidSocket_isUnavailableNamingTheSetting() {
        CertificateDirectory certs = CertificateDirectory.create(dir.resolve("tls"), List.of("server", "client"));
        Path socket = dir.resolve("a.sock");
        try (MeshCredentials server = MeshCredentials.load(certs.settings("server"), "test.tls");
             MeshCredentials client = MeshCredentials.load(certs.settings("client"), "test.tls")) {
            start(socket, server.server(), UnixSocketSecurity.PEER_UID);
            assertThatThrownBy(() -> health(socket, client.channel(), UnixSocketSecurity.TLS))
                    .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
                        assertThat(e.getStatus().getDescription()).contains("unix-socket-security");
                    });
        }
    }

    @Test
    void mismatch_plaintextClientOnATlsSocket_isUnavailableNamingTheSetting() {
        CertificateDirectory certs = CertificateDirectory.create(dir.resolve("tls"), List.of("server", "client"));
        Path socket = dir.resolve("b.sock");
        try (MeshCredentials server = MeshCredentials.load(certs.settings("server"), "test.tls");
             MeshCredentials client = MeshCredentials.load(certs.settings("client"), "test.tls")) {
            start(socket, server.server(), UnixSocketSecurity.TLS);
            assertThatThrownBy(() -> health(socket, client.channel(), UnixSocketSecurity.PEER_UID))
                    .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
                        assertThat(e.getStatus().getDescription()).contains("unix-socket-security");
                    });
        }
    }

    @Test
    void staleSocketFile_leftByAKilledProcess_doesNotStopARestart() throws IOException {
        Path socket = dir.resolve("stale.sock");
        // A closed listener leaves its file behind, as a process killed with SIGKILL does (unix(7)).
        try (ServerSocketChannel dead = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            dead.bind(UnixDomainSocketAddress.of(socket));
        }
        assertThat(socket).exists();
        start(socket, InsecureServerCredentials.create());
        assertThat(health(socket, InsecureChannelCredentials.create())).isEqualTo(ServingStatus.SERVING);
    }

    @Test
    void liveListenerOnTheSocket_isAStartupErrorNamingTheSetting_andKeepsServing() {
        Path socket = dir.resolve("live.sock");
        start(socket, InsecureServerCredentials.create());
        GrpcServerLifecycle second = new GrpcServerLifecycle("second", "127.0.0.1", 0,
                InsecureServerCredentials.create(), 1 << 20, Duration.ofSeconds(1), List.of(), List.of())
                .alsoOnUnixSocket(socket, SETTING);
        assertThatThrownBy(second::start).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining(SETTING).hasMessageContaining("a live process already listens");
        assertThat(second.isRunning()).isFalse();
        assertThat(health(socket, InsecureChannelCredentials.create())).isEqualTo(ServingStatus.SERVING);
    }

    @Test
    @Timeout(30)
    void liveListenerWithAFullBacklog_isAStartupError_notHungOnAndNotRemoved() throws IOException {
        Path socket = dir.resolve("busy.sock");
        List<SocketChannel> queued = new ArrayList<>();
        try (ServerSocketChannel busy = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            busy.bind(UnixDomainSocketAddress.of(socket), 1); // never accepts: its backlog fills
            IOException full = null;
            while (full == null && queued.size() < 64) {
                SocketChannel c = SocketChannel.open(StandardProtocolFamily.UNIX);
                c.configureBlocking(false);
                try {
                    c.connect(UnixDomainSocketAddress.of(socket));
                    queued.add(c);
                } catch (IOException e) {
                    c.close();
                    full = e;
                }
            }
            assumeTrue(full != null, "this kernel queues unix connections past the backlog");
            GrpcServerLifecycle s = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(),
                    1 << 20, Duration.ofSeconds(1), List.of(), List.of()).alsoOnUnixSocket(socket, SETTING);
            assertThatThrownBy(s::start).isInstanceOf(IllegalStateException.class).hasMessageContaining(SETTING)
                    .satisfies(e -> assertThat(e.getMessage()).containsAnyOf("a live process already listens",
                            "cannot tell whether a live process listens"));
            assertThat(socket).exists();
        } finally {
            for (SocketChannel c : queued) {
                c.close();
            }
        }
    }

    @Test
    void pathThatIsNotASocket_isNeverDeleted() throws IOException {
        Path file = Files.writeString(dir.resolve("data.txt"), "keep me");
        GrpcServerLifecycle s = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(),
                1 << 20, Duration.ofSeconds(1), List.of(), List.of()).alsoOnUnixSocket(file, SETTING);
        assertThatThrownBy(s::start).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining(SETTING).hasMessageContaining("is not a socket");
        assertThat(file).hasContent("keep me");
    }

    @Test
    void tooLongSocketPath_isAClearErrorNamingTheSettingAndTheLimit() {
        Path longPath = dir.resolve("d".repeat(60)).resolve("e".repeat(60) + ".sock");
        assertThatThrownBy(() -> new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(),
                1 << 20, Duration.ofSeconds(1), List.of(), List.of()).alsoOnUnixSocket(longPath, SETTING))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(SETTING)
                .hasMessageContaining("at most 107");
    }

    @Test
    void relativeSocketPath_isRefused() {
        assertThatThrownBy(() -> new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(),
                1 << 20, Duration.ofSeconds(1), List.of(), List.of()).alsoOnUnixSocket(Path.of("rel.sock"), SETTING))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(SETTING)
                .hasMessageContaining("must be absolute");
    }
}
