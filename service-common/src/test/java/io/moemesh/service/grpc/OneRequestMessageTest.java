package io.moemesh.service.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.BindableService;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.InsecureServerCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.protobuf.ProtoUtils;
import io.grpc.stub.ServerCalls;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * On a real Netty server with {@link CallReset}'s tracers: a call of a method whose client sends one message must
 * send exactly one. One that half-closes without it, or sends a second, is the client's mistake: INVALID_ARGUMENT
 * naming the message type and the rule, where grpc-java answers INTERNAL "Half-closed without a request" (a server
 * fault to anyone watching INTERNAL) or resets the stream (a bare CANCELLED, as if the client had cancelled).
 */
class OneRequestMessageTest {
    private static final String SERVICE = "test.One";
    private static final MethodDescriptor<HealthCheckRequest, HealthCheckResponse> UNARY = MethodDescriptor
            .<HealthCheckRequest, HealthCheckResponse>newBuilder().setType(MethodDescriptor.MethodType.UNARY)
            .setFullMethodName(MethodDescriptor.generateFullMethodName(SERVICE, "Unary"))
            .setRequestMarshaller(ProtoUtils.marshaller(HealthCheckRequest.getDefaultInstance()))
            .setResponseMarshaller(ProtoUtils.marshaller(HealthCheckResponse.getDefaultInstance())).build();
    private static final MethodDescriptor<HealthCheckRequest, HealthCheckResponse> SERVER_STREAMING = UNARY.toBuilder()
            .setType(MethodDescriptor.MethodType.SERVER_STREAMING)
            .setFullMethodName(MethodDescriptor.generateFullMethodName(SERVICE, "Streaming")).build();

    private final AtomicInteger handled = new AtomicInteger();
    private final AtomicInteger admitted = new AtomicInteger();
    private final AtomicInteger released = new AtomicInteger();
    /** What the guard told of the calls it ended itself (the expert-service counts them in errors_total). */
    private final List<Status.Code> closedByGuard = new CopyOnWriteArrayList<>();
    private GrpcServerLifecycle server;
    private ManagedChannel channel;

    @BeforeEach
    void start() {
        BindableService service = () -> ServerServiceDefinition.builder(SERVICE)
                .addMethod(UNARY, ServerCalls.asyncUnaryCall((request, out) -> {
                    handled.incrementAndGet();
                    out.onNext(HealthCheckResponse.getDefaultInstance());
                    out.onCompleted();
                }))
                .addMethod(SERVER_STREAMING, ServerCalls.asyncServerStreamingCall((request, out) -> {
                    handled.incrementAndGet();
                    out.onNext(HealthCheckResponse.getDefaultInstance());
                    out.onCompleted();
                }))
                .build();
        RequestParsingGuard.Gate gate = (method, bytes) -> {
            admitted.incrementAndGet();
            return released::incrementAndGet;
        };
        BindableService guarded = () -> RequestParsingGuard.guard(service.bindService(), gate, null,
                status -> closedByGuard.add(status.getCode()));
        server = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(), 1 << 20,
                Duration.ofSeconds(1), List.of(guarded), List.of()).resettableCalls();
        server.start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
    }

    @AfterEach
    void stop() {
        channel.shutdownNow();
        server.stop();
    }

    /**
     * Sends {@code messages} copies of a request, each at once (the method taken for a bidi stream: grpc-java's own
     * client sends a one-message call's message only with its half-close), and half-closes when asked.
     */
    private CompletableFuture<Status> call(MethodDescriptor<HealthCheckRequest, HealthCheckResponse> method,
                                           int messages, boolean halfClose) {
        ClientCall<HealthCheckRequest, HealthCheckResponse> c = channel.newCall(
                method.toBuilder().setType(MethodDescriptor.MethodType.BIDI_STREAMING).build(),
                CallOptions.DEFAULT.withDeadlineAfter(30, TimeUnit.SECONDS));
        CompletableFuture<Status> closed = new CompletableFuture<>();
        c.start(new ClientCall.Listener<>() {
            @Override
            public void onClose(Status status, Metadata trailers) {
                closed.complete(status);
            }
        }, new Metadata());
        c.request(Integer.MAX_VALUE);
        for (int i = 0; i < messages; i++) {
            c.sendMessage(HealthCheckRequest.newBuilder().setService("s" + i).build());
        }
        if (halfClose) {
            c.halfClose();
        }
        return closed;
    }

    @ParameterizedTest(name = "{0}")
    @EnumSource(value = MethodDescriptor.MethodType.class, names = {"UNARY", "SERVER_STREAMING"})
    void aCallEndingItsRequestWithoutAMessage_isInvalidArgument_namingTheMissingMessage(
            MethodDescriptor.MethodType type) {
        MethodDescriptor<HealthCheckRequest, HealthCheckResponse> method =
                type == MethodDescriptor.MethodType.UNARY ? UNARY : SERVER_STREAMING;

        assertThat(call(method, 0, true)).succeedsWithin(Duration.ofSeconds(10)).satisfies(s -> {
            assertThat(s.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(s.getDescription()).isEqualTo("the call ended its request without a "
                    + "grpc.health.v1.HealthCheckRequest: " + method.getFullMethodName() + " takes exactly one");
        });
        assertThat(handled).hasValue(0);
        assertThat(admitted).hasValue(0);
        assertThat(closedByGuard).containsExactly(Status.Code.INVALID_ARGUMENT);
    }

    /** The server's own health check (guarded by GrpcServerLifecycle) keeps the same rule. */
    @Test
    void aHealthCheckWithoutItsRequest_isInvalidArgument() {
        assertThat(call(HealthGrpc.getCheckMethod(), 0, true)).succeedsWithin(Duration.ofSeconds(10))
                .satisfies(s -> assertThat(s.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT))
                .satisfies(s -> assertThat(s.getDescription()).contains("without a grpc.health.v1.HealthCheckRequest"));
    }

    @ParameterizedTest(name = "half-closed {0}")
    @ValueSource(booleans = {true, false})
    void aSecondRequestMessage_isInvalidArgument_namingTheRule_neverHandledNorAdmitted(boolean halfClose) {
        for (MethodDescriptor<HealthCheckRequest, HealthCheckResponse> method : List.of(UNARY, SERVER_STREAMING)) {
            assertThat(call(method, 2, halfClose)).succeedsWithin(Duration.ofSeconds(10)).satisfies(s -> {
                assertThat(s.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                assertThat(s.getDescription()).isEqualTo("the call sent a second grpc.health.v1.HealthCheckRequest: "
                        + method.getFullMethodName() + " takes exactly one");
            });
        }
        assertThat(handled).hasValue(0);
        assertThat(admitted).as("its message is held until the half-close, which never comes to the handler")
                .hasValue(0);
        assertThat(closedByGuard).containsExactly(Status.Code.INVALID_ARGUMENT, Status.Code.INVALID_ARGUMENT);

        // The server is fine: a call that keeps the rule is served.
        assertThat(call(UNARY, 1, true)).succeedsWithin(Duration.ofSeconds(10))
                .satisfies(s -> assertThat(s.getCode()).isEqualTo(Status.Code.OK));
        assertThat(admitted).hasValue(1);
        await().atMost(Duration.ofSeconds(10)).until(() -> released.get() == 1);
    }
}
