package io.moemesh.service.tls;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.BindableService;
import io.grpc.CallOptions;
import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerServiceDefinition;
import io.grpc.netty.shaded.io.netty.handler.ssl.OpenSsl;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCalls;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.testing.TextRpc;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Which TLS engine and cipher suite the mesh's mutual TLS really gets, on a real handshake. */
class TlsEngineTest {
    private static final MethodDescriptor<String, String> SESSION = TextRpc.method(
            MethodDescriptor.MethodType.UNARY, "test.Tls", "Session");
    private static final Context.Key<SSLSession> SSL = Context.key("ssl");
    private static final BindableService TLS = () -> ServerServiceDefinition.builder("test.Tls")
            .addMethod(SESSION, ServerCalls.asyncUnaryCall((req, out) -> {
                SSLSession s = SSL.get();
                out.onNext(s.getClass().getName() + "|" + s.getProtocol() + "|" + s.getCipherSuite());
                out.onCompleted();
            })).build();
    private static final ServerInterceptor SESSION_IN_CONTEXT = new ServerInterceptor() {
        @Override
        public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                           ServerCallHandler<Q, R> next) {
            return Contexts.interceptCall(Context.current().withValue(SSL,
                    call.getAttributes().get(Grpc.TRANSPORT_ATTR_SSL_SESSION)), call, headers, next);
        }
    };

    @TempDir
    Path dir;

    private static boolean aesInstructions() {
        try {
            return Files.readAllLines(Path.of("/proc/cpuinfo")).stream()
                    .anyMatch(l -> l.startsWith("flags") && (" " + l + " ").contains(" aes "));
        } catch (IOException | UncheckedIOException e) {
            return false;
        }
    }

    @Test
    void meshTls_runsOnOpenSsl_whenAvailable_withTls13AndAes128GcmOnAesHardware() {
        CertificateDirectory certs = CertificateDirectory.create(dir.resolve("tls"), List.of("server", "client"));
        try (MeshCredentials server = MeshCredentials.load(certs.settings("server"), "test.tls");
             MeshCredentials client = MeshCredentials.load(certs.settings("client"), "test.tls")) {
            GrpcServerLifecycle s = new GrpcServerLifecycle("test", "127.0.0.1", 0, server.server(), 1 << 20,
                    Duration.ofSeconds(1), List.of(TLS), List.of(SESSION_IN_CONTEXT));
            s.start();
            ManagedChannel ch = Grpc.newChannelBuilderForAddress("127.0.0.1", s.port(), client.channel()).build();
            try {
                String session = ClientCalls.blockingUnaryCall(ch, SESSION,
                        CallOptions.DEFAULT.withDeadlineAfter(20, TimeUnit.SECONDS), "");
                String[] parts = session.split("\\|");
                if (OpenSsl.isAvailable()) {
                    assertThat(parts[0]).as("SSLSession of the server's engine").contains("OpenSsl");
                    assertThat(MeshCredentials.engine()).startsWith("OpenSSL");
                }
                assertThat(parts[1]).isEqualTo("TLSv1.3");
                if (aesInstructions()) {
                    // The cheapest of TLS 1.3's AEADs on AES-NI hardware (BoringSSL's own preference there).
                    assertThat(parts[2]).isEqualTo("TLS_AES_128_GCM_SHA256");
                }
            } finally {
                ch.shutdownNow();
                s.stop();
            }
        }
    }
}
