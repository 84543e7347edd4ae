package io.moemesh.service.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.grpc.BindableService;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.InsecureServerCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.service.testing.TextRpc;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * On a real Netty server with a {@link HeldRequestBytes} budget: grpc-java reads a one-message call's request as it
 * arrives and holds it until the half-close, so the bytes of calls that never half-close are counted, server-wide;
 * the call whose bytes take the total past the budget is closed RESOURCE_EXHAUSTED naming the setting and reset,
 * giving its bytes back, while the calls within it stay open and are served once they half-close; a half-close or a
 * call's end gives its bytes back, and a stream's messages (passed on, not held) never count.
 */
class HeldRequestBytesTest {
    private static final String SETTING = "moemesh.test.max-held-request-bytes";
    private static final int MESSAGE = 100_000;
    /** Two messages fit, a third does not. */
    private static final long BUDGET = 2 * MESSAGE + MESSAGE / 2;
    private static final MethodDescriptor<String, String> ECHO =
            TextRpc.method(MethodDescriptor.MethodType.UNARY, "test.Held", "Echo");
    /** Echo as a client may call it that sends its message at once (grpc-java's sends it with the half-close). */
    private static final MethodDescriptor<String, String> ECHO_SENT_AT_ONCE = ECHO.toBuilder()
            .setType(MethodDescriptor.MethodType.BIDI_STREAMING).build();
    private static final MethodDescriptor<String, String> STREAM =
            TextRpc.method(MethodDescriptor.MethodType.BIDI_STREAMING, "test.Held", "Stream");

    private final HeldRequestBytes held = new HeldRequestBytes(BUDGET, SETTING);
    private final AtomicInteger streamed = new AtomicInteger();
    private GrpcServerLifecycle server;
    private ManagedChannel channel;

    /** Echo answers with its message's length at its half-close; Stream takes every message and answers none. */
    private final BindableService service = () -> ServerServiceDefinition.builder("test.Held")
            .addMethod(ECHO, (call, headers) -> {
                call.request(2);
                return new ServerCall.Listener<>() {
                    private String message;

                    @Override
                    public void onMessage(String m) {
                        message = m;
                    }

                    @Override
                    public void onHalfClose() {
                        call.sendHeaders(new Metadata());
                        call.sendMessage(Integer.toString(message.length()));
                        call.close(Status.OK, new Metadata());
                    }
                };
            })
            .addMethod(STREAM, (call, headers) -> {
                call.request(Integer.MAX_VALUE);
                return new ServerCall.Listener<>() {
                    @Override
                    public void onMessage(String m) {
                        streamed.incrementAndGet();
                    }
                };
            })
            .build();

    private void start() {
        start(Duration.ofSeconds(60));
    }

    /** {@code serverBound}: the half-close bound of the one-message calls the server guards (health, reflection). */
    private void start(Duration serverBound) {
        RequestParsingGuard.Gate gate = (method, bytes) -> () -> { };
        BindableService guarded = () -> RequestParsingGuard.guard(service.bindService(), gate,
                new RequestParsingGuard.HalfCloseBound(Duration.ofSeconds(60), "moemesh.test.request-read-timeout"));
        server = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(), 1 << 20,
                Duration.ofSeconds(1), List.of(guarded), List.of()).resettableCalls(held,
                new RequestParsingGuard.HalfCloseBound(serverBound, "moemesh.test.server-read-timeout"));
        server.start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
    }

    @AfterEach
    void stop() {
        if (channel != null) {
            channel.shutdownNow();
        }
        if (server != null) {
            server.stop();
        }
    }

    /** A call that sent {@code message} and has not half-closed; what it got and how it closed. */
    private record Open(ClientCall<String, String> call, CompletableFuture<String> reply,
                        CompletableFuture<Status> closed) {
    }

    private Open send(MethodDescriptor<String, String> method, String message) {
        CompletableFuture<String> reply = new CompletableFuture<>();
        CompletableFuture<Status> closed = new CompletableFuture<>();
        ClientCall<String, String> call = channel.newCall(method, CallOptions.DEFAULT);
        call.start(new ClientCall.Listener<>() {
            @Override
            public void onMessage(String m) {
                reply.complete(m);
            }

            @Override
            public void onClose(Status status, Metadata trailers) {
                closed.complete(status);
            }
        }, new Metadata());
        call.request(1);
        call.sendMessage(message);
        return new Open(call, reply, closed);
    }

    @Test
    void theCallThatTakesTheHeldBytesPastTheBudget_isResetResourceExhausted_namingTheSetting_theOthersServed() {
        start();
        Open a = send(ECHO_SENT_AT_ONCE, "a".repeat(MESSAGE));
        await().atMost(Duration.ofSeconds(10)).until(() -> held.held() == MESSAGE);
        Open b = send(ECHO_SENT_AT_ONCE, "b".repeat(MESSAGE));
        await().atMost(Duration.ofSeconds(10)).until(() -> held.held() == 2 * MESSAGE);

        Open c = send(ECHO_SENT_AT_ONCE, "c".repeat(MESSAGE));

        assertThat(c.closed()).succeedsWithin(Duration.ofSeconds(10))
                .satisfies(s -> assertThat(s.getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED))
                .satisfies(s -> assertThat(s.getDescription()).contains(SETTING, Long.toString(BUDGET)));
        assertThat(held.resets()).isEqualTo(1);
        assertThat(held.held()).as("c's bytes given back").isEqualTo(2 * MESSAGE);
        assertThat(a.closed()).isNotDone();
        assertThat(b.closed()).isNotDone();

        // Half-closed, a is served and gives its bytes back: another call fits again.
        a.call().halfClose();
        assertThat(a.reply()).succeedsWithin(Duration.ofSeconds(10)).isEqualTo(Integer.toString(MESSAGE));
        assertThat(a.closed()).succeedsWithin(Duration.ofSeconds(10)).isEqualTo(Status.OK);
        assertThat(held.held()).isEqualTo(MESSAGE);
        Open d = send(ECHO_SENT_AT_ONCE, "d".repeat(MESSAGE));
        d.call().halfClose();
        assertThat(d.reply()).succeedsWithin(Duration.ofSeconds(10)).isEqualTo(Integer.toString(MESSAGE));

        // A call that ends without its half-close gives its bytes back too.
        b.call().cancel("the test is done", null);
        await().atMost(Duration.ofSeconds(10)).until(() -> held.held() == 0);
        assertThat(held.resets()).isEqualTo(1);
    }

    /**
     * A health check (no gate, no API key on the gateway) that never half-closes holds its message against the same
     * budget: without a bound of its own, a few such calls would fill the budget for good and every other call would
     * be reset. The server's bound ends it and gives its bytes back.
     */
    @Test
    void aHealthCheckThatNeverHalfCloses_isEndedByTheServersBound_andGivesItsBytesBack() {
        start(Duration.ofMillis(500));
        MethodDescriptor<String, String> check = TextRpc.method(MethodDescriptor.MethodType.BIDI_STREAMING,
                "grpc.health.v1.Health", "Check");

        Open h = send(check, "h".repeat(MESSAGE));

        assertThat(h.closed()).succeedsWithin(Duration.ofSeconds(20))
                .satisfies(s -> assertThat(s.getCode()).isEqualTo(Status.Code.DEADLINE_EXCEEDED))
                .satisfies(s -> assertThat(s.getDescription()).contains("moemesh.test.server-read-timeout"));
        await().atMost(Duration.ofSeconds(10)).until(() -> held.held() == 0);
        assertThat(held.resets()).isZero();
    }

    @Test
    void aStreamsMessages_areNotHeld_soTheyNeverCount() {
        start();
        Open s = send(STREAM, "s".repeat(MESSAGE));
        for (int i = 1; i < 5; i++) {
            s.call().sendMessage("s".repeat(MESSAGE));
        }

        await().atMost(Duration.ofSeconds(10)).until(() -> streamed.get() == 5);
        assertThat(held.held()).isZero();
        assertThat(held.resets()).isZero();
        assertThat(s.closed()).isNotDone();
    }

    @Test
    void aBudgetBelowOneByte_isRefused_namingItsSetting() {
        assertThatThrownBy(() -> new HeldRequestBytes(0, SETTING)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(SETTING).hasMessageContaining("got 0");
    }
}
