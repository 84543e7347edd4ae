package io.moemesh.service.tls;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.BindableService;
import io.grpc.CallOptions;
import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCredentials;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCalls;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.testing.TextRpc;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Real handshakes on loopback: a GrpcServerLifecycle with the mesh's server credentials and the identity
 * interceptor, clients with and without the mesh's certificate.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class MutualTlsSocketTest {
    private static final MethodDescriptor<String, String> WHO_AM_I = TextRpc.method(
            MethodDescriptor.MethodType.UNARY, "test.Peers", "WhoAmI");
    /** Answers with the caller's identity as the handler sees it. */
    private static final BindableService PEERS = () -> ServerServiceDefinition.builder("test.Peers")
            .addMethod(WHO_AM_I, ServerCalls.asyncUnaryCall((req, out) -> {
                out.onNext(PeerIdentityInterceptor.current().map(MeshIdentity::name).orElse("(none)"));
                out.onCompleted();
            })).build();

    @TempDir
    static Path tmp;
    private CertificateDirectory mesh;
    private CertificateDirectory foreign;
    private MeshCredentials serverCredentials;
    private GrpcServerLifecycle server;
    private final List<ManagedChannel> channels = new ArrayList<>();
    private final List<AutoCloseable> closeAfterAll = new ArrayList<>();

    @BeforeAll
    void startServer() {
        mesh = CertificateDirectory.create(tmp.resolve("mesh"), List.of("expert-0", "gateway", "placer"));
        foreign = CertificateDirectory.create(tmp.resolve("foreign"), List.of("expert-0", "placer"));
        serverCredentials = MeshCredentials.load(mesh.settings("expert-0"), "test.tls");
        server = start(serverCredentials.server());
    }

    @AfterAll
    void stopServer() throws Exception {
        server.stop();
        serverCredentials.close();
        for (AutoCloseable c : closeAfterAll) {
            c.close();
        }
    }

    @AfterEach
    void closeChannels() {
        channels.forEach(ManagedChannel::shutdownNow);
        channels.clear();
    }

    private GrpcServerLifecycle start(ServerCredentials credentials) {
        GrpcServerLifecycle s = new GrpcServerLifecycle("test", "127.0.0.1", 0, credentials, 1 << 20,
                Duration.ofSeconds(1), List.of(PEERS), List.of(new PeerIdentityInterceptor()));
        s.start();
        return s;
    }

    private ManagedChannel channel(int port, ChannelCredentials credentials) {
        ManagedChannel ch = Grpc.newChannelBuilderForAddress("127.0.0.1", port, credentials).build();
        channels.add(ch);
        return ch;
    }

    private static String whoAmI(ManagedChannel ch) {
        return ClientCalls.blockingUnaryCall(ch, WHO_AM_I, CallOptions.DEFAULT.withDeadlineAfter(20, TimeUnit.SECONDS), "");
    }

    private static ServingStatus health(ManagedChannel ch) {
        return HealthGrpc.newBlockingStub(ch).withDeadlineAfter(20, TimeUnit.SECONDS)
                .check(HealthCheckRequest.getDefaultInstance()).getStatus();
    }

    private ChannelCredentials client(CertificateDirectory d, String name) {
        MeshCredentials c = MeshCredentials.load(d.settings(name), "test.tls");
        closeAfterAll.add(c);
        return c.channel();
    }

    @Test
    void aClientWithTheMeshCertificate_isServed_andIdentifiedByItsSpiffeName() {
        ManagedChannel ch = channel(server.port(), client(mesh, "gateway"));
        assertThat(whoAmI(ch)).isEqualTo("gateway");
        assertThat(health(ch)).isEqualTo(ServingStatus.SERVING);
        assertThat(whoAmI(channel(server.port(), client(mesh, "placer")))).isEqualTo("placer");
    }

    Stream<Arguments> strangers() throws IOException {
        return Stream.of(
                Arguments.of("plaintext", InsecureChannelCredentials.create()),
                Arguments.of("TLS without a client certificate", TlsChannelCredentials.newBuilder()
                        .trustManager(mesh.caBundle().toFile()).build()),
                Arguments.of("a client certificate of another CA (trusting the mesh CA)", TlsChannelCredentials.newBuilder()
                        .keyManager(foreign.certChain("placer").toFile(), foreign.privateKey("placer").toFile())
                        .trustManager(mesh.caBundle().toFile()).build()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("strangers")
    void aClientWithoutTheMeshCertificate_isRefusedAtTheHandshake_onEveryServiceIncludingHealth(String who,
                                                                                            ChannelCredentials creds) {
        ManagedChannel ch = channel(server.port(), creds);
        assertThatThrownBy(() -> whoAmI(ch)).isInstanceOfSatisfying(StatusRuntimeException.class,
                e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE));
        assertThatThrownBy(() -> health(ch)).isInstanceOfSatisfying(StatusRuntimeException.class,
                e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE));
    }

    @Test
    void aServerOfAnotherCa_isRefusedByTheMeshClient() throws Exception {
        try (MeshCredentials impostor = MeshCredentials.load(foreign.settings("expert-0"), "test.tls")) {
            GrpcServerLifecycle other = start(impostor.server());
            try {
                ManagedChannel ch = channel(other.port(), client(mesh, "gateway"));
                assertThatThrownBy(() -> whoAmI(ch)).isInstanceOfSatisfying(StatusRuntimeException.class,
                        e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE));
            } finally {
                other.stop();
            }
        }
    }

    /**
     * The CA bundle is read as every certificate in the file: while the mesh CA is rotated, a bundle of the old and
     * the new CA (docs/kubernetes.md, "Rotating the mesh CA") lets peers of either CA call each other, in both
     * directions, so leaves can be re-issued one by one without a failed handshake.
     */
    @Test
    void aCaBundleOfTwoCas_acceptsPeersOfEither_asWhileTheMeshCaIsRotated() throws Exception {
        Path bothCas = tmp.resolve("old-and-new-ca.crt");
        Files.writeString(bothCas, Files.readString(mesh.caBundle()) + "\n" + Files.readString(foreign.caBundle()));
        try (MeshCredentials oldCaServer = MeshCredentials.load(new TlsSettings(TlsSettings.Mode.MTLS,
                     mesh.certChain("expert-0"), mesh.privateKey("expert-0"), bothCas, Duration.ZERO), "test.tls");
             MeshCredentials newCaServer = MeshCredentials.load(new TlsSettings(TlsSettings.Mode.MTLS,
                     foreign.certChain("expert-0"), foreign.privateKey("expert-0"), bothCas, Duration.ZERO), "test.tls");
             MeshCredentials oldCaClient = MeshCredentials.load(new TlsSettings(TlsSettings.Mode.MTLS,
                     mesh.certChain("gateway"), mesh.privateKey("gateway"), bothCas, Duration.ZERO), "test.tls");
             MeshCredentials newCaClient = MeshCredentials.load(new TlsSettings(TlsSettings.Mode.MTLS,
                     foreign.certChain("placer"), foreign.privateKey("placer"), bothCas, Duration.ZERO), "test.tls")) {
            for (MeshCredentials serverSide : List.of(oldCaServer, newCaServer)) {
                GrpcServerLifecycle other = start(serverSide.server());
                try {
                    assertThat(whoAmI(channel(other.port(), oldCaClient.channel()))).isEqualTo("gateway");
                    assertThat(whoAmI(channel(other.port(), newCaClient.channel()))).isEqualTo("placer");
                } finally {
                    other.stop();
                }
            }
        }
    }

    @Test
    void plaintextServer_servesPlaintextClients_withoutIdentity() {
        try (MeshCredentials plain = MeshCredentials.load(TlsSettings.plaintext(), "test.tls")) {
            assertThat(plain.isMtls()).isFalse();
            GrpcServerLifecycle other = start(plain.server());
            try {
                assertThat(whoAmI(channel(other.port(), plain.channel()))).isEqualTo("(none)");
            } finally {
                other.stop();
            }
        }
    }

    /** Runs what AdvancedTls schedules only when the test says so. */
    private static final class ManualReloads extends ScheduledThreadPoolExecutor {
        private final List<Runnable> tasks = new ArrayList<>();

        ManualReloads() {
            super(1);
        }

        @Override
        public ScheduledFuture<?> scheduleWithFixedDelay(Runnable task, long initialDelay, long delay, TimeUnit unit) {
            tasks.add(task);
            return schedule(() -> { }, 1, TimeUnit.DAYS);
        }

        void runAll() {
            tasks.forEach(Runnable::run);
        }
    }

    @Test
    void withAReloadPeriod_rotatedFilesAreUsed_withoutNewCredentials() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("rotating"));
        Files.copy(mesh.certChain("gateway"), dir.resolve("client.crt"));
        Files.copy(mesh.privateKey("gateway"), dir.resolve("client.key"));
        ManualReloads reloads = new ManualReloads();
        TlsSettings settings = new TlsSettings(TlsSettings.Mode.MTLS, dir.resolve("client.crt"), dir.resolve("client.key"),
                mesh.caBundle(), Duration.ofMinutes(1));
        try (MeshCredentials client = MeshCredentials.load(settings, "test.tls", () -> reloads)) {
            assertThat(whoAmI(channel(server.port(), client.channel()))).isEqualTo("gateway");

            // The Secret is rotated: another certificate and key replace the files (newer modification times).
            Files.copy(mesh.certChain("placer"), dir.resolve("client.crt"), StandardCopyOption.REPLACE_EXISTING);
            Files.copy(mesh.privateKey("placer"), dir.resolve("client.key"), StandardCopyOption.REPLACE_EXISTING);
            FileTime later = FileTime.from(Instant.now().plusSeconds(5));
            Files.setLastModifiedTime(dir.resolve("client.crt"), later);
            Files.setLastModifiedTime(dir.resolve("client.key"), later);
            reloads.runAll();

            assertThat(whoAmI(channel(server.port(), client.channel()))).as("a new connection presents the new certificate")
                    .isEqualTo("placer");
        }
        assertThat(reloads.isShutdown()).as("close() stops the re-reads").isTrue();
    }
}
