package io.moemesh.expert.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moemesh.expert.support.TestCertificates;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.LoadAssignmentRequest;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.grpc.UnixSocketSecurity;
import io.moemesh.expert.ExpertServiceApplication;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.service.expert.ExpertCall;
import io.moemesh.service.expert.GrpcInstanceClient;
import io.moemesh.service.grpc.InstanceEndpoint;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;

/** moemesh.expert.grpc-unix-socket: the expert-service on a real Unix domain socket next to its TCP port. */
class UnixSocketStartupTest {
    @TempDir
    Path dir;

    private static ConfigurableApplicationContext run(String... args) {
        List<String> all = new ArrayList<>(List.of("--moemesh.expert.model-dir=" + TestModels.dir(TestModels.MIXTRAL),
                "--moemesh.expert.grpc-port=0", "--server.port=0", "--management.server.port=0",
                "--moemesh.expert.tls.mode=plaintext", "--moemesh.expert.backend=noop",
                "--moemesh.expert.assign-all=true"));
        all.addAll(List.of(args));
        return new SpringApplicationBuilder(ExpertServiceApplication.class).run(all.toArray(String[]::new));
    }

    @Test
    void expertBatch_overTheUnixSocket_afterAStaleSocketFileWasLeftBehind() throws Exception {
        assumeTrue(InstanceEndpoint.domainSocketsAvailable());
        Path socket = dir.resolve("expert-0.sock");
        // what a kill -9 of the previous instance leaves: the file, nobody listening
        try (ServerSocketChannel dead = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            dead.bind(UnixDomainSocketAddress.of(socket));
        }
        int hidden = ModelConfigReader.read(TestModels.dir(TestModels.MIXTRAL)).hiddenSize();
        try (ConfigurableApplicationContext ctx = run("--moemesh.expert.grpc-unix-socket=" + socket);
             GrpcInstanceClient client = new GrpcInstanceClient("expert-0", "unix://" + socket,
                     InsecureChannelCredentials.create(), DType.DTYPE_F32, 64 << 20)) {
            float[] x = new float[hidden];
            for (int i = 0; i < hidden; i++) {
                x[i] = i / (float) hidden - 0.5f;
            }
            float[] out = client.call(new ExpertCall(0, 0, x, 1, hidden, new int[] {2}, new int[] {0, 1},
                    new float[] {0.5f, 0.5f})).get(1, TimeUnit.MINUTES);
            // the noop backend's identity experts: out = (Σw)·x
            for (int i = 0; i < hidden; i++) {
                assertThat(out[i]).isCloseTo(x[i], within(1e-6f));
            }
        }
        assertThat(socket).doesNotExist();
    }

    private static ConfigurableApplicationContext runMtls(String... args) {
        var mesh = TestCertificates.mesh();
        List<String> all = new ArrayList<>(List.of("--moemesh.expert.model-dir=" + TestModels.dir(TestModels.MIXTRAL),
                "--moemesh.expert.grpc-port=0", "--server.port=0", "--management.server.port=0",
                "--moemesh.expert.backend=noop", "--moemesh.expert.instance-id=expert-7",
                "--moemesh.expert.tls.cert-chain=" + mesh.certChain("expert-7"),
                "--moemesh.expert.tls.private-key=" + mesh.privateKey("expert-7"),
                "--moemesh.expert.tls.ca-bundle=" + mesh.caBundle()));
        all.addAll(List.of(args));
        return new SpringApplicationBuilder(ExpertServiceApplication.class).run(all.toArray(String[]::new));
    }

    private static LoadAssignmentRequest assignment(long epoch) {
        return LoadAssignmentRequest.newBuilder().setInstanceId("expert-7").setEpoch(epoch)
                .addExperts(ExpertRef.newBuilder().setLayer(0).setExpert(0)).build();
    }

    private static Status.Code loadAssignment(ManagedChannel ch, long epoch) {
        try {
            ExpertServiceGrpc.newBlockingStub(ch).withDeadlineAfter(1, TimeUnit.MINUTES).loadAssignment(assignment(epoch));
            return Status.Code.OK;
        } catch (StatusRuntimeException e) {
            return e.getStatus().getCode();
        } finally {
            ch.shutdownNow();
        }
    }

    @Test
    void peerUidSocket_ofAMutualTlsInstance_letsTheSameUidPlaceWithoutCertificate_whileTcpStillNeedsAPlacer() {
        assumeTrue(InstanceEndpoint.domainSocketsAvailable());
        Path socket = dir.resolve("expert-7.sock");
        try (ConfigurableApplicationContext ctx = runMtls("--moemesh.expert.grpc-unix-socket=" + socket)) {
            int port = ctx.getBean(GrpcServerLifecycle.class).port();
            // the local owner (this test's uid, kernel-verified) over the socket, plaintext
            assertThat(loadAssignment(InstanceEndpoint.unix(socket).channelBuilder(InsecureChannelCredentials.create())
                    .build(), 1)).isEqualTo(Status.Code.OK);
            // TCP exactly as before: no certificate, no connection; a mesh member that is not a placer, refused
            assertThat(loadAssignment(Grpc.newChannelBuilderForAddress("127.0.0.1", port,
                    InsecureChannelCredentials.create()).build(), 2)).isEqualTo(Status.Code.UNAVAILABLE);
            assertThat(loadAssignment(Grpc.newChannelBuilderForAddress("127.0.0.1", port,
                    TestCertificates.as("gateway")).build(), 2)).isEqualTo(Status.Code.PERMISSION_DENIED);
            assertThat(loadAssignment(Grpc.newChannelBuilderForAddress("127.0.0.1", port,
                    TestCertificates.as("placer")).build(), 2)).isEqualTo(Status.Code.OK);
        }
    }

    @Test
    void tlsSocket_keepsMutualTls_placerCertificateNeeded_andAPlaintextClientIsToldOfTheMismatch() {
        assumeTrue(InstanceEndpoint.domainSocketsAvailable());
        Path socket = dir.resolve("expert-7t.sock");
        try (ConfigurableApplicationContext ctx = runMtls("--moemesh.expert.grpc-unix-socket=" + socket,
                "--moemesh.expert.unix-socket-security=tls")) {
            InstanceEndpoint endpoint = InstanceEndpoint.unix(socket);
            assertThat(loadAssignment(endpoint.channelBuilder(TestCertificates.as("placer"), UnixSocketSecurity.TLS)
                    .build(), 1)).isEqualTo(Status.Code.OK);
            assertThat(loadAssignment(endpoint.channelBuilder(TestCertificates.as("gateway"), UnixSocketSecurity.TLS)
                    .build(), 2)).isEqualTo(Status.Code.PERMISSION_DENIED);
            ManagedChannel plaintext = endpoint.channelBuilder(TestCertificates.as("placer")).build();
            try {
                assertThatThrownBy(() -> ExpertServiceGrpc.newBlockingStub(plaintext)
                        .withDeadlineAfter(1, TimeUnit.MINUTES).loadAssignment(assignment(2)))
                        .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
                            assertThat(e.getStatus().getDescription()).contains("unix-socket-security is tls");
                        });
            } finally {
                plaintext.shutdownNow();
            }
        }
    }

    @Test
    void tlsSocket_onAPlaintextInstance_failsToStart_namingTheProperty() {
        assumeTrue(InstanceEndpoint.domainSocketsAvailable());
        assertThatThrownBy(() -> run("--moemesh.expert.grpc-unix-socket=" + dir.resolve("p.sock"),
                "--moemesh.expert.unix-socket-security=tls").close()).rootCause()
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("moemesh.expert.unix-socket-security=tls");
    }

    @Test
    void tooLongSocketPath_failsToStart_namingThePropertyAndTheLimit() {
        String longPath = "/tmp/" + "x".repeat(120) + ".sock";
        assertThatThrownBy(() -> run("--moemesh.expert.grpc-unix-socket=" + longPath).close()).rootCause()
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("moemesh.expert.grpc-unix-socket").hasMessageContaining("at most 107");
    }
}
