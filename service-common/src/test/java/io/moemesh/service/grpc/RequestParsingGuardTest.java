package io.moemesh.service.grpc;

import static io.moemesh.service.testing.RawMessages.raw;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.BindableService;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.protobuf.ProtoUtils;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import io.grpc.InsecureServerCredentials;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link RequestParsingGuard} on a real Netty server started by {@link GrpcServerLifecycle}: a request that does not
 * parse is INVALID_ARGUMENT naming the message type (never UNKNOWN, never a logged stack trace), a too-large one
 * RESOURCE_EXHAUSTED at once, a bidi stream with manual flow control keeps its semantics, and a gate admits by size.
 */
class RequestParsingGuardTest {
    private static final int MAX_INBOUND = 64 << 10;
    private static final String ECHO_SERVICE = "test.Echo";


    private static final MethodDescriptor<HealthCheckRequest, HealthCheckResponse> ECHO = MethodDescriptor
            .<HealthCheckRequest, HealthCheckResponse>newBuilder().setType(MethodDescriptor.MethodType.BIDI_STREAMING)
            .setFullMethodName(MethodDescriptor.generateFullMethodName(ECHO_SERVICE, "Echo"))
            .setRequestMarshaller(ProtoUtils.marshaller(HealthCheckRequest.getDefaultInstance()))
            .setResponseMarshaller(ProtoUtils.marshaller(HealthCheckResponse.getDefaultInstance())).build();

    private static final MethodDescriptor<HealthCheckRequest, HealthCheckResponse> UNARY = ECHO.toBuilder()
            .setType(MethodDescriptor.MethodType.UNARY)
            .setFullMethodName(MethodDescriptor.generateFullMethodName(ECHO_SERVICE, "Unary")).build();

    /** The same method names, sending whatever bytes the test wants. */

    private final List<LogRecord> grpcWarnings = new CopyOnWriteArrayList<>();
    private final Handler capture = new Handler() {
        @Override
        public void publish(LogRecord r) {
            if (r.getLevel().intValue() >= Level.WARNING.intValue()) {
                grpcWarnings.add(r);
            }
        }

        @Override
        public void flush() {
        }

        @Override
        public void close() {
        }
    };

    /** What the echo handler saw: messages, cancellations, and whether a late reply threw. */
    private final BlockingQueue<String> seen = new LinkedBlockingQueue<>();
    private final AtomicInteger unaryHandled = new AtomicInteger();
    private GrpcServerLifecycle server;
    private ManagedChannel channel;

    /**
     * Echo: manual flow control like the expert-service's ExpertBatch (disableAutoRequest, one request(1) per
     * message). Each message's service name comes back as the reply's status name... as a count of messages.
     */
    private BindableService echoService() {
        return () -> ServerServiceDefinition.builder(ECHO_SERVICE)
                .addMethod(ECHO, ServerCalls.asyncBidiStreamingCall(responses -> {
                    ServerCallStreamObserver<HealthCheckResponse> out = (ServerCallStreamObserver<HealthCheckResponse>) responses;
                    out.disableAutoRequest();
                    out.setOnCancelHandler(() -> seen.add("cancel-handler"));
                    out.request(1);
                    return new StreamObserver<>() {
                        @Override
                        public void onNext(HealthCheckRequest value) {
                            seen.add("message " + value.getService());
                            out.onNext(HealthCheckResponse.newBuilder()
                                    .setStatus(HealthCheckResponse.ServingStatus.SERVING).build());
                            out.request(1);
                        }

                        @Override
                        public void onError(Throwable t) {
                            seen.add("onError " + Status.fromThrowable(t).getCode());
                            try {
                                // A reply racing the end of the call must not blow up in the handler.
                                out.onNext(HealthCheckResponse.getDefaultInstance());
                                seen.add("late reply ignored");
                            } catch (RuntimeException e) {
                                seen.add("late reply threw " + e);
                            }
                        }

                        @Override
                        public void onCompleted() {
                            out.onCompleted();
                        }
                    };
                }))
                .addMethod(UNARY, ServerCalls.asyncUnaryCall((req, out) -> {
                    unaryHandled.incrementAndGet();
                    out.onNext(HealthCheckResponse.newBuilder().setStatus(HealthCheckResponse.ServingStatus.SERVING)
                            .build());
                    out.onCompleted();
                }))
                .build();
    }

    private void start(BindableService service) {
        server = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(), MAX_INBOUND, Duration.ofSeconds(1), List.of(service),
                List.of(), Set.of(ECHO.getFullMethodName()));
        server.start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext()
                .maxInboundMessageSize(8 << 20).build();
    }

    @BeforeEach
    void captureGrpcLogs() {
        Logger.getLogger("io.grpc").addHandler(capture);
    }

    @AfterEach
    void stop() {
        Logger.getLogger("io.grpc").removeHandler(capture);
        if (channel != null) {
            channel.shutdownNow();
        }
        if (server != null) {
            server.stop();
        }
    }

    private Status unaryStatus(MethodDescriptor<?, ?> method, byte[] body, String compression) {
        CallOptions options = CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS);
        if (compression != null) {
            options = options.withCompression(compression);
        }
        try {
            ClientCalls.blockingUnaryCall(channel, raw(method), options, body);
            return Status.OK;
        } catch (StatusRuntimeException e) {
            return e.getStatus();
        }
    }

    private static byte[] utf8String(int field, byte[] value) {
        byte[] out = new byte[value.length + 2];
        out[0] = (byte) (field << 3 | 2);
        out[1] = (byte) value.length;
        System.arraycopy(value, 0, out, 2, value.length);
        return out;
    }

    @ParameterizedTest(name = "gzip {0}")
    @ValueSource(booleans = {false, true})
    void unparseableRequest_isInvalidArgument_namingTheMessageType_andNothingIsLogged(boolean gzip) {
        start(echoService());
        String compression = gzip ? "gzip" : null;
        MethodDescriptor<?, ?> check = HealthGrpc.getCheckMethod();
        // Field 1 as a length-delimited field running past the end of the message.
        Status truncated = unaryStatus(check, new byte[] {0x0A, 0x7F, 'x'}, compression);
        assertThat(truncated.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(truncated.getDescription()).startsWith("the request is not a valid grpc.health.v1.HealthCheckRequest: ")
                .contains("input ended unexpectedly");
        // A proto3 string that is not UTF-8 (a lone continuation byte).
        Status notUtf8 = unaryStatus(check, utf8String(1, new byte[] {'a', (byte) 0x80}), compression);
        assertThat(notUtf8.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(notUtf8.getDescription()).contains("UTF-8");
        // Tag 0 is never valid.
        assertThat(unaryStatus(UNARY, new byte[] {0, 0, 0}, compression).getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(unaryHandled).as("the handler never saw the bad messages").hasValue(0);

        assertThat(HealthGrpc.newBlockingStub(channel).check(HealthCheckRequest.getDefaultInstance()).getStatus())
                .isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
        assertThat(unaryStatus(UNARY, HealthCheckRequest.newBuilder().setService("ok").build().toByteArray(), compression))
                .isEqualTo(Status.OK);
        assertThat(grpcWarnings).as("grpc-java logged nothing").isEmpty();
    }

    @Test
    void messageOverTheInboundLimit_isResourceExhausted_promptly() {
        start(echoService());
        byte[] big = HealthCheckRequest.newBuilder().setService("x".repeat(MAX_INBOUND + 10)).build().toByteArray();
        Status s = unaryStatus(UNARY, big, null);
        assertThat(s.getCode()).as(String.valueOf(s)).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
        // The same when it only exceeds the limit once inflated.
        Status inflated = unaryStatus(UNARY, big, "gzip");
        assertThat(inflated.getCode()).as(String.valueOf(inflated)).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
        assertThat(unaryStatus(UNARY, HealthCheckRequest.getDefaultInstance().toByteArray(), null)).isEqualTo(Status.OK);
    }

    @Test
    void bidiStreamWithManualFlowControl_repliesToGoodMessages_thenEndsWithInvalidArgument_atTheBadOne()
            throws Exception {
        start(echoService());
        BlockingQueue<Object> replies = new LinkedBlockingQueue<>();
        var requests = ClientCalls.asyncBidiStreamingCall(channel.newCall(raw(ECHO), CallOptions.DEFAULT),
                new StreamObserver<byte[]>() {
                    @Override
                    public void onNext(byte[] value) {
                        replies.add("reply");
                    }

                    @Override
                    public void onError(Throwable t) {
                        replies.add(Status.fromThrowable(t));
                    }

                    @Override
                    public void onCompleted() {
                        replies.add("completed");
                    }
                });
        for (int i = 0; i < 3; i++) {
            requests.onNext(HealthCheckRequest.newBuilder().setService("m" + i).build().toByteArray());
        }
        for (int i = 0; i < 3; i++) {
            assertThat(replies.poll(10, TimeUnit.SECONDS)).isEqualTo("reply");
        }
        requests.onNext(new byte[] {0x0A, 0x7F});
        Object end = replies.poll(10, TimeUnit.SECONDS);
        assertThat(end).isInstanceOfSatisfying(Status.class, s -> {
            assertThat(s.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(s.getDescription()).contains("grpc.health.v1.HealthCheckRequest");
        });
        assertThat(pollAll(4)).containsExactly("message m0", "message m1", "message m2", "cancel-handler");
        assertThat(seen.poll(10, TimeUnit.SECONDS)).isEqualTo("onError CANCELLED");
        assertThat(seen.poll(10, TimeUnit.SECONDS)).isEqualTo("late reply ignored");
        assertThat(grpcWarnings).isEmpty();
    }

    /** Opens an echo stream whose replies and end land in {@code replies}. */
    private StreamObserver<byte[]> echoStream(BlockingQueue<Object> replies) {
        return ClientCalls.asyncBidiStreamingCall(channel.newCall(raw(ECHO), CallOptions.DEFAULT),
                new StreamObserver<byte[]>() {
                    @Override
                    public void onNext(byte[] value) {
                        replies.add("reply");
                    }

                    @Override
                    public void onError(Throwable t) {
                        replies.add(Status.fromThrowable(t));
                    }

                    @Override
                    public void onCompleted() {
                        replies.add("completed");
                    }
                });
    }

    /**
     * Over the inbound limit, grpc-java's transport ends the stream before any handler sees the message, with
     * trailers saying RESOURCE_EXHAUSTED and a reset (the client is still sending): which one the client reports
     * depends on their race, so CANCELLED is possible too. Either way at once, and the handler gets its cancel.
     */
    @Test
    void bidiStream_messageOverTheInboundLimit_endsTheStreamAtOnce_andTheHandlerSeesACancel() throws Exception {
        start(echoService());
        byte[] big = HealthCheckRequest.newBuilder().setService("x".repeat(MAX_INBOUND + 1)).build().toByteArray();
        BlockingQueue<Object> first = new LinkedBlockingQueue<>();
        echoStream(first).onNext(big);
        assertThat(first.poll(10, TimeUnit.SECONDS)).isInstanceOfSatisfying(Status.class,
                st -> assertThat(st.getCode()).isIn(Status.Code.RESOURCE_EXHAUSTED, Status.Code.CANCELLED));
        assertThat(pollAll(3)).containsExactly("cancel-handler", "onError CANCELLED", "late reply ignored");

        BlockingQueue<Object> later = new LinkedBlockingQueue<>();
        StreamObserver<byte[]> requests = echoStream(later);
        requests.onNext(HealthCheckRequest.newBuilder().setService("small").build().toByteArray());
        assertThat(later.poll(10, TimeUnit.SECONDS)).isEqualTo("reply");
        requests.onNext(big);
        assertThat(later.poll(10, TimeUnit.SECONDS)).isInstanceOfSatisfying(Status.class,
                st -> assertThat(st.getCode()).isIn(Status.Code.RESOURCE_EXHAUSTED, Status.Code.CANCELLED));
        assertThat(pollAll(4)).containsExactly("message small", "cancel-handler", "onError CANCELLED",
                "late reply ignored");
        assertThat(unaryStatus(UNARY, HealthCheckRequest.getDefaultInstance().toByteArray(), null)).isEqualTo(Status.OK);
    }

    private List<String> pollAll(int n) throws InterruptedException {
        List<String> out = new java.util.ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(seen.poll(10, TimeUnit.SECONDS));
        }
        return out;
    }

    @Test
    void gate_seesTheSerializedSize_refusesBeforeParsing_andReleasesAfterTheHandler() {
        List<Integer> sizes = new CopyOnWriteArrayList<>();
        AtomicInteger released = new AtomicInteger();
        BindableService echo = echoService();
        BindableService gated = () -> RequestParsingGuard.guard(echo.bindService(), (method, bytes) -> {
            sizes.add(bytes);
            if (bytes > 100) {
                throw Status.RESOURCE_EXHAUSTED.withDescription("too big for now").asRuntimeException();
            }
            return released::incrementAndGet;
        });
        start(gated);
        byte[] small = HealthCheckRequest.newBuilder().setService("hello").build().toByteArray();
        assertThat(unaryStatus(UNARY, small, null)).isEqualTo(Status.OK);
        assertThat(unaryStatus(UNARY, small, "gzip")).isEqualTo(Status.OK);
        Status refused = unaryStatus(UNARY, HealthCheckRequest.newBuilder().setService("y".repeat(200)).build()
                .toByteArray(), null);
        assertThat(refused.getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
        assertThat(refused.getDescription()).isEqualTo("too big for now");
        assertThat(sizes).containsExactly(small.length, small.length, 203);
        assertThat(released).hasValue(2);
        assertThat(unaryHandled).hasValue(2);
        assertThat(RequestParsingGuard.guard(RequestParsingGuard.guard(echo.bindService()))
                .getMethod(UNARY.getFullMethodName()).getMethodDescriptor().getRequestMarshaller())
                .as("guarding twice wraps once").isSameAs(RequestParsingGuard.guard(echo.bindService())
                        .getMethod(UNARY.getFullMethodName()).getMethodDescriptor().getRequestMarshaller());
    }

    @Test
    @SuppressWarnings("unchecked")
    void gate_aSecondMessageOnAUnaryCall_isInvalidArgument_admittedOnce_itsPermitGivenBack() {
        AtomicInteger admitted = new AtomicInteger();
        AtomicInteger released = new AtomicInteger();
        io.grpc.ServerMethodDefinition<?, ?> method = RequestParsingGuard.guard(echoService().bindService(),
                (m, bytes) -> {
                    admitted.incrementAndGet();
                    return released::incrementAndGet;
                }).getMethod(UNARY.getFullMethodName());
        List<Status> closed = new CopyOnWriteArrayList<>();
        // The server side of a call that breaks the unary contract, should a transport deliver its second message
        // (grpc-java's unary handler asks for two so as to refuse it; its 1.85 transport resets the stream instead,
        // which OneRequestMessageTest covers).
        io.grpc.ServerCall<Object, Object> call = new io.grpc.ServerCall<>() {
            @Override
            public void request(int n) {
            }

            @Override
            public void sendHeaders(io.grpc.Metadata headers) {
            }

            @Override
            public void sendMessage(Object message) {
            }

            @Override
            public void close(Status status, io.grpc.Metadata trailers) {
                closed.add(status);
            }

            @Override
            public boolean isCancelled() {
                return false;
            }

            @Override
            public MethodDescriptor<Object, Object> getMethodDescriptor() {
                return (MethodDescriptor<Object, Object>) method.getMethodDescriptor();
            }
        };
        io.grpc.ServerCall.Listener<Object> listener = ((io.grpc.ServerCallHandler<Object, Object>)
                method.getServerCallHandler()).startCall(call, new io.grpc.Metadata());
        byte[] body = HealthCheckRequest.newBuilder().setService("hello").build().toByteArray();
        listener.onMessage(new java.io.ByteArrayInputStream(body));
        listener.onMessage(new java.io.ByteArrayInputStream(body));
        listener.onHalfClose();
        listener.onComplete();
        assertThat(closed).singleElement().satisfies(st -> {
            assertThat(st.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(st.getDescription()).isEqualTo("the call sent a second grpc.health.v1.HealthCheckRequest: "
                    + UNARY.getFullMethodName() + " takes exactly one");
        });
        assertThat(admitted).as("the second message is refused before the gate").hasValue(1);
        assertThat(released).as("the first one's permit given back").hasValue(1);
        assertThat(unaryHandled).hasValue(0);
    }

    @Test
    void internalErrors_sayOnlyInternalError_neverTheClassName() {
        Status s = StatusMapping.toStatus(new NullPointerException("secret detail"));
        assertThat(s.getCode()).isEqualTo(Status.Code.INTERNAL);
        assertThat(s.getDescription()).isEqualTo(StatusMapping.INTERNAL_DESCRIPTION).doesNotContain("NullPointer");
        assertThat(StatusMapping.toRpcStatus(new IllegalStateException("x")).getCode())
                .isEqualTo(Status.Code.FAILED_PRECONDITION.value());
        assertThatThrownBy(() -> {
            throw StatusMapping.toStatus(new IllegalArgumentException("bad field")).asRuntimeException();
        }).hasMessage("INVALID_ARGUMENT: bad field");
        String echoed = StatusMapping.toStatus(new IllegalArgumentException("x".repeat(1 << 20))).getDescription();
        assertThat(echoed).as("descriptions travel in trailers: bounded").hasSizeLessThanOrEqualTo(
                StatusMapping.MAX_DESCRIPTION_CHARS).endsWith("(1048576 characters in all)");
    }
}
