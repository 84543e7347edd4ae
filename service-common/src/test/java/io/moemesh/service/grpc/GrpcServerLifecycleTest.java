package io.moemesh.service.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.BindableService;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.ServerServiceDefinition;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCalls;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** A real Netty server on loopback: which thread runs a call's handler, and the port checks. */
class GrpcServerLifecycleTest {
    private static final MethodDescriptor.Marshaller<String> TEXT = new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(String value) {
            return new ByteArrayInputStream(value.getBytes(StandardCharsets.UTF_8));
        }

        @Override
        public String parse(InputStream stream) {
            try {
                return new String(stream.readAllBytes(), StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    };

    private static MethodDescriptor<String, String> method(String name) {
        return MethodDescriptor.<String, String>newBuilder().setType(MethodDescriptor.MethodType.UNARY)
                .setFullMethodName(MethodDescriptor.generateFullMethodName("test.Threads", name))
                .setRequestMarshaller(TEXT).setResponseMarshaller(TEXT).build();
    }

    private static final MethodDescriptor<String, String> DIRECT = method("Direct");
    private static final MethodDescriptor<String, String> POOLED = method("Pooled");

    /** Answers with the name of the thread its handler ran on. */
    private static final BindableService THREADS = () -> ServerServiceDefinition.builder("test.Threads")
            .addMethod(DIRECT, ServerCalls.asyncUnaryCall((req, out) -> {
                out.onNext(Thread.currentThread().getName());
                out.onCompleted();
            }))
            .addMethod(POOLED, ServerCalls.asyncUnaryCall((req, out) -> {
                out.onNext(Thread.currentThread().getName());
                out.onCompleted();
            }))
            .build();

    private GrpcServerLifecycle server;
    private ManagedChannel channel;

    @AfterEach
    void stop() {
        if (channel != null) {
            channel.shutdownNow();
        }
        if (server != null) {
            server.stop();
        }
    }

    @Test
    void transportThreadMethods_runOnTheEventLoop_othersOnTheDefaultExecutor() {
        server = new GrpcServerLifecycle("test", "127.0.0.1", 0, 1 << 20, Duration.ofSeconds(1), List.of(THREADS),
                List.of(), Set.of(DIRECT.getFullMethodName()));
        server.start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        String direct = ClientCalls.blockingUnaryCall(channel, DIRECT, CallOptions.DEFAULT, "");
        String pooled = ClientCalls.blockingUnaryCall(channel, POOLED, CallOptions.DEFAULT, "");
        // grpc-java names its Netty event loop threads *-ELG-*; its default executor grpc-default-executor-N.
        assertThat(direct).contains("ELG");
        assertThat(pooled).startsWith("grpc-default-executor");
    }

    @Test
    void withoutTransportThreadMethods_everyCallRunsOnTheDefaultExecutor() {
        server = new GrpcServerLifecycle("test", "127.0.0.1", 0, 1 << 20, Duration.ofSeconds(1), List.of(THREADS),
                List.of());
        server.start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        assertThat(ClientCalls.blockingUnaryCall(channel, DIRECT, CallOptions.DEFAULT, ""))
                .startsWith("grpc-default-executor");
    }

    @Test
    void portOutOfRange_isRefused_namingTheServer() {
        assertThatThrownBy(() -> new GrpcServerLifecycle("expert-service x", "127.0.0.1", 70000, 1 << 20,
                Duration.ofSeconds(1), List.of(THREADS), List.of()))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("expert-service x: gRPC port must be in [0, 65535], got 70000");
    }
}
