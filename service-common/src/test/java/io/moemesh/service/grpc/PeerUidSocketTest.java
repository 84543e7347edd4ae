package io.moemesh.service.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.grpc.BindableService;
import io.grpc.CallOptions;
import io.grpc.InsecureChannelCredentials;
import io.grpc.InsecureServerCredentials;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.ServerServiceDefinition;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCalls;
import io.moemesh.service.testing.TextRpc;
import io.moemesh.service.tls.CertificateDirectory;
import io.moemesh.service.tls.MeshCredentials;
import io.moemesh.service.tls.MeshIdentity;
import io.moemesh.service.tls.PeerIdentityInterceptor;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * unix-socket-security=peer-uid on real epoll domain sockets: plaintext to this uid with the LOCAL_OWNER identity,
 * the socket's file-system protection, and (where the tests run as root with setpriv) a process of another uid closed
 * before HTTP/2.
 */
class PeerUidSocketTest {
    private static final String SETTING = "test.grpc-unix-socket";
    private static final String SECURITY = "test.unix-socket-security";
    private static final MethodDescriptor<String, String> WHO_AM_I = TextRpc.method(
            MethodDescriptor.MethodType.UNARY, "test.Peers", "WhoAmI");
    private static final BindableService PEERS = () -> ServerServiceDefinition.builder("test.Peers")
            .addMethod(WHO_AM_I, ServerCalls.asyncUnaryCall((req, out) -> {
                out.onNext(PeerIdentityInterceptor.current().map(MeshIdentity::toString).orElse("(none)"));
                out.onCompleted();
            })).build();

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

    private GrpcServerLifecycle start(Path socket, io.grpc.ServerCredentials credentials, UnixSocketSecurity security) {
        GrpcServerLifecycle s = new GrpcServerLifecycle("test", "127.0.0.1", 0, credentials, 1 << 20,
                Duration.ofSeconds(1), List.of(PEERS), List.of(new PeerIdentityInterceptor()))
                .alsoOnUnixSocket(socket, SETTING, security, SECURITY);
        s.start();
        servers.add(s);
        return s;
    }

    private String whoAmI(InstanceEndpoint endpoint, io.grpc.ChannelCredentials credentials) {
        ManagedChannel ch = endpoint.channelBuilder(credentials).build();
        channels.add(ch);
        return ClientCalls.blockingUnaryCall(ch, WHO_AM_I, CallOptions.DEFAULT.withDeadlineAfter(20, TimeUnit.SECONDS), "");
    }

    @Test
    void sameUidPlaintextCall_isServed_asTheLocalOwner_whileTcpCallersKeepTheirCertificateIdentity() {
        CertificateDirectory certs = CertificateDirectory.create(dir.resolve("tls"), List.of("server", "gateway"));
        Path socket = dir.resolve("sockets").resolve("e.sock");
        try (MeshCredentials server = MeshCredentials.load(certs.settings("server"), "test.tls");
             MeshCredentials gateway = MeshCredentials.load(certs.settings("gateway"), "test.tls")) {
            GrpcServerLifecycle s = start(socket, server.server(), UnixSocketSecurity.PEER_UID);
            assertThat(whoAmI(InstanceEndpoint.unix(socket), gateway.channel()))
                    .isEqualTo(MeshIdentity.LOCAL_OWNER.toString());
            assertThat(whoAmI(InstanceEndpoint.parse("127.0.0.1:" + s.port()), gateway.channel()))
                    .isEqualTo("spiffe://moemesh/gateway");
        }
    }

    @Test
    void plaintextTcpPort_givesNoIdentity_whileItsPeerUidSocketGivesTheLocalOwner() {
        Path socket = dir.resolve("p.sock");
        GrpcServerLifecycle s = start(socket, InsecureServerCredentials.create(), UnixSocketSecurity.PEER_UID);
        assertThat(whoAmI(InstanceEndpoint.parse("127.0.0.1:" + s.port()), InsecureChannelCredentials.create()))
                .isEqualTo("(none)");
        assertThat(whoAmI(InstanceEndpoint.unix(socket), InsecureChannelCredentials.create()))
                .isEqualTo(MeshIdentity.LOCAL_OWNER.toString());
    }

    @Test
    void socketFile_isOwnerOnly_andAMissingDirectoryIsCreatedOwnerOnly() throws IOException {
        Path socket = dir.resolve("made").resolve("here").resolve("s.sock");
        start(socket, InsecureServerCredentials.create(), UnixSocketSecurity.PEER_UID);
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(socket))).isEqualTo("rw-------");
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(socket.getParent())))
                .isEqualTo("rwx------");
    }

    @ParameterizedTest(name = "directory {0}")
    @ValueSource(strings = {"rwxr-x---", "rwx---r-x", "rwxrwx---", "rwxr-xr-x", "rwx-----x"})
    void groupOrWorldAccessibleDirectory_isRefusedAtStart_namingBothSettings(String mode) throws IOException {
        Path open = Files.createDirectory(dir.resolve("open"));
        Files.setPosixFilePermissions(open, PosixFilePermissions.fromString(mode));
        GrpcServerLifecycle s = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(),
                1 << 20, Duration.ofSeconds(1), List.of(), List.of())
                .alsoOnUnixSocket(open.resolve("s.sock"), SETTING, UnixSocketSecurity.PEER_UID, SECURITY);
        assertThatThrownBy(s::start).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining(SETTING).hasMessageContaining(SECURITY + "=tls")
                .hasMessageContaining("accessible to group or others");
        assertThat(s.isRunning()).isFalse();
        assertThat(open.resolve("s.sock")).doesNotExist();
    }

    @Test
    void tlsModeOnAPlaintextService_isAStartupErrorNamingTheSetting() {
        GrpcServerLifecycle s = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(),
                1 << 20, Duration.ofSeconds(1), List.of(), List.of())
                .alsoOnUnixSocket(dir.resolve("t.sock"), SETTING, UnixSocketSecurity.TLS, SECURITY);
        assertThatThrownBy(s::start).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining(SECURITY + "=tls").hasMessageContaining("without TLS");
        assertThat(s.isRunning()).isFalse();
    }

    @ParameterizedTest(name = "own uid {0}, peer uid {1}: served {2}")
    @CsvSource({"1000, 1000, true", "1000, 1001, false", "1000, 0, false", "0, 0, true", "0, 1000, false"})
    void onlyThePeersOfTheServersOwnUid_areServed(int own, int peer, boolean served) {
        assertThat(new SameUidRule(own).refusal(4242, peer).isEmpty()).isEqualTo(served);
        new SameUidRule(own).refusal(4242, peer).ifPresent(why -> assertThat(why)
                .contains("pid 4242").contains("uid " + peer).contains("uid " + own));
    }

    @Test
    void thisProcessesUid_isTheOwnerOfTheFilesItCreates() throws IOException {
        Path file = Files.createFile(dir.resolve("mine"));
        assertThat(SameUidRule.ofThisProcess().ownUid()).isEqualTo(Files.getAttribute(file, "unix:uid"));
    }

    /**
     * proc(5): {@code Uid:} lists the real, effective, saved set and file-system uids; the effective one is the
     * process's, whoever owns {@code /proc/self} (root:root for a process that is not dumpable).
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = ';', value = {"1000 1000 1000 1000; 1000", "0 1001 0 1001; 1001", "1001 0 0 0; 0",
        "0 4294967294 0 0; -2"})
    void effectiveUid_isTheSecondUidOfTheStatusUidLine(String uids, int effective) {
        String status = "Name:\tjava\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nPid:\t4242\nPPid:\t1\n"
                + "TracerPid:\t0\nUid:\t" + uids.replace(' ', '\t') + "\nGid:\t0\t0\t0\t0\nFDSize:\t256\n";
        assertThat(SameUidRule.effectiveUid(status)).isEqualTo(effective);
    }

    @Test
    void effectiveUid_failsWithoutAUidLine() {
        assertThatThrownBy(() -> SameUidRule.effectiveUid("Name:\tjava\nGid:\t0\t0\t0\t0\n"))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("Uid:");
    }

    /**
     * A real process of another uid (nobody, via setpriv; possible only where the tests run as root, as in CI) is closed
     * before the server sends a byte of HTTP/2, while one of this uid gets the server's SETTINGS frame. The socket's
     * directory and file are opened up after the start, so that only the kernel's peer check stands in the way.
     */
    @Test
    void aProcessOfAnotherUid_isClosedBeforeHttp2_evenWhenTheFileSystemLetsItConnect() throws Exception {
        Path setpriv = Path.of("/usr/bin/setpriv");
        assumeTrue(SameUidRule.ofThisProcess().ownUid() == 0 && Files.isExecutable(setpriv),
                "needs root and setpriv to run a process as another uid");
        Path socket = dir.resolve("x.sock");
        start(socket, InsecureServerCredentials.create(), UnixSocketSecurity.PEER_UID);
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx--x--x"));
        Files.setPosixFilePermissions(socket, PosixFilePermissions.fromString("rw-rw-rw-"));
        Path probeDir = Files.createTempDirectory("moemesh-probe");
        try {
            Files.setPosixFilePermissions(probeDir, PosixFilePermissions.fromString("rwxr-xr-x"));
            Path probe = Files.writeString(probeDir.resolve("Probe.java"), """
                    import java.net.*; import java.nio.*; import java.nio.channels.*;
                    public class Probe { public static void main(String[] a) throws Exception {
                        try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
                            ch.connect(UnixDomainSocketAddress.of(a[0]));
                            int n;
                            try {
                                ch.write(ByteBuffer.wrap("PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n".getBytes()));
                                n = ch.read(ByteBuffer.allocate(64));
                            } catch (java.io.IOException reset) {
                                // closed before our preface was written (EPIPE) or with it unread (ECONNRESET)
                                n = -1;
                            }
                            System.out.println(n < 0 ? "closed" : "answered");
                        } } }
                    """);
            Files.setPosixFilePermissions(probe, PosixFilePermissions.fromString("rw-r--r--"));
            String java = ProcessHandle.current().info().command().orElseThrow();
            assertThat(run(List.of(java, probe.toString(), socket.toString()), probeDir)).isEqualTo("answered");
            assertThat(run(List.of(setpriv.toString(), "--reuid=65534", "--regid=65534", "--clear-groups", java,
                    "-XX:-UsePerfData", probe.toString(), socket.toString()), probeDir)).isEqualTo("closed");
        } finally {
            try (var files = Files.list(probeDir)) {
                for (Path f : files.toList()) {
                    Files.delete(f);
                }
            }
            Files.delete(probeDir);
        }
    }

    private static String run(List<String> command, Path workDir) throws Exception {
        Process p = new ProcessBuilder(command).directory(workDir.toFile()).redirectErrorStream(true).start();
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).as("probe finished").isTrue();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        return out.lines().reduce((a, b) -> b).orElse(out);
    }
}
