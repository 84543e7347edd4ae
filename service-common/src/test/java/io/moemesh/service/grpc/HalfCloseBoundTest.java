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
import io.grpc.ServerCall;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCalls;
import io.moemesh.service.testing.TextRpc;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * On a real Netty server: {@link RequestParsingGuard}'s half-close bound ends a gated call that sent its message
 * but never half-closes (its handler told of a cancellation, never run; grpc-java held the message, unparsed, so no
 * permit was taken), and leaves a call that half-closed in time alone however long its handler takes; {@link CallReset} ends a call whose client reads
 * nothing at once, dropping what was queued for it, where a close would wait behind those messages.
 */
class HalfCloseBoundTest {
    /** Only for calls that never half-close: the test waits for it to pass. */
    private static final Duration BOUND = Duration.ofMillis(200);
    /**
     * For a call that half-closes in time: its start and half-close are one client write apart, but a loaded machine
     * may stall the server that long between them; never near this.
     */
    private static final Duration IN_TIME_BOUND = Duration.ofSeconds(2);
    private static final String SETTING = "moemesh.test.request-read-timeout";
    private static final MethodDescriptor<String, String> ECHO =
            TextRpc.method(MethodDescriptor.MethodType.UNARY, "test.Bound", "Echo");
    /**
     * Echo as a client may call it that sends its message at once: grpc-java's own client sends the message of a
     * call whose client sends one (unary, server streaming) only with its half-close; other clients need not, and
     * the server does not check what type the client took the method for.
     */
    private static final MethodDescriptor<String, String> ECHO_SENT_AT_ONCE = ECHO.toBuilder()
            .setType(MethodDescriptor.MethodType.BIDI_STREAMING).build();
    private static final MethodDescriptor<String, String> FLOOD =
            TextRpc.method(MethodDescriptor.MethodType.SERVER_STREAMING, "test.Bound", "Flood");

    private final AtomicInteger admitted = new AtomicInteger();
    private final AtomicInteger released = new AtomicInteger();
    /** What the echo handler's listener heard: "message x", "half-close", "cancel", "complete". */
    private final List<String> heard = new CopyOnWriteArrayList<>();
    private final CompletableFuture<Boolean> floodReset = new CompletableFuture<>();
    /** The Flood handler's listener heard the call end as cancelled: its stream is closed in the server's transport. */
    private final CompletableFuture<Void> floodCancelled = new CompletableFuture<>();
    private final AtomicInteger floodReceived = new AtomicInteger();
    private GrpcServerLifecycle server;
    private ManagedChannel channel;
    /** The half-close bound of the server started. */
    private Duration bound;

    /** Echo answers 1.5 × the bound after its half-close; Flood queues 1 MiB for a client that reads nothing. */
    private final BindableService service = () -> ServerServiceDefinition.builder("test.Bound")
            .addMethod(ECHO, (call, headers) -> {
                call.request(2);
                return new ServerCall.Listener<>() {
                    private String message;

                    @Override
                    public void onMessage(String m) {
                        message = m;
                        heard.add("message " + m);
                    }

                    @Override
                    public void onHalfClose() {
                        heard.add("half-close");
                        long after = bound.toMillis() * 3 / 2;
                        CompletableFuture.delayedExecutor(after, TimeUnit.MILLISECONDS).execute(() -> {
                            call.sendHeaders(new Metadata());
                            call.sendMessage(message);
                            call.close(Status.OK, new Metadata());
                        });
                    }

                    @Override
                    public void onCancel() {
                        heard.add("cancel");
                    }

                    @Override
                    public void onComplete() {
                        heard.add("complete");
                    }
                };
            })
            .addMethod(FLOOD, (call, headers) -> {
                CallReset reset = CallReset.current();
                call.request(1);
                return new ServerCall.Listener<>() {
                    @Override
                    public void onHalfClose() {
                        call.sendHeaders(new Metadata());
                        for (int i = 0; i < 1024; i++) {
                            call.sendMessage("x".repeat(1024));
                        }
                        floodReset.complete(reset.reset("the test client reads nothing"));
                    }

                    @Override
                    public void onCancel() {
                        floodCancelled.complete(null);
                    }
                };
            })
            .build();

    private void start() {
        start(BOUND);
    }

    private void start(Duration halfCloseBound) {
        bound = halfCloseBound;
        RequestParsingGuard.Gate gate = (method, bytes) -> {
            admitted.incrementAndGet();
            return released::incrementAndGet;
        };
        BindableService guarded = () -> RequestParsingGuard.guard(service.bindService(), gate,
                new RequestParsingGuard.HalfCloseBound(halfCloseBound, SETTING));
        server = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(), 1 << 20,
                Duration.ofSeconds(1), List.of(guarded), List.of()).resettableCalls();
        server.start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().flowControlWindow(65536)
                .build();
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

    /** A started call and how it closed. */
    private record Started(ClientCall<String, String> call, CompletableFuture<Status> closed) {
    }

    /** Starts a call, reading {@code reads} messages (counted in {@link #floodReceived}). */
    private Started call(MethodDescriptor<String, String> method, String message, boolean halfClose, int reads) {
        CompletableFuture<Status> closed = new CompletableFuture<>();
        ClientCall<String, String> call = channel.newCall(method, CallOptions.DEFAULT);
        call.start(new ClientCall.Listener<>() {
            @Override
            public void onMessage(String m) {
                floodReceived.incrementAndGet();
            }

            @Override
            public void onClose(Status status, Metadata trailers) {
                closed.complete(status);
            }
        }, new Metadata());
        if (reads > 0) {
            call.request(reads);
        }
        call.sendMessage(message);
        if (halfClose) {
            call.halfClose();
        }
        return new Started(call, closed);
    }

    @Test
    void aCallThatNeverHalfCloses_endsAtTheBound_namingItsSetting_neverHandled_holdingNoPermit() {
        start();
        CompletableFuture<Status> closed = call(ECHO_SENT_AT_ONCE, "held", false, 1).closed();

        await().atMost(Duration.ofSeconds(10)).until(closed::isDone);
        assertThat(closed.join().getCode()).isEqualTo(Status.Code.DEADLINE_EXCEEDED);
        assertThat(closed.join().getDescription()).contains("did not half-close (end its request) within 200 ms",
                SETTING);
        await().atMost(Duration.ofSeconds(10)).until(() -> heard.contains("cancel"));
        // grpc-java holds a one-message call's message until the half-close: neither the gate nor the method saw it.
        assertThat(heard).containsExactly("cancel");
        assertThat(admitted).hasValue(0);
        assertThat(released).hasValue(0);
    }

    @Test
    void aCallThatHalfClosesInTime_isServed_howeverLongItsHandlerTakes() {
        start(IN_TIME_BOUND);
        String reply = ClientCalls.blockingUnaryCall(channel, ECHO, CallOptions.DEFAULT.withDeadlineAfter(30,
                TimeUnit.SECONDS), "hello");

        assertThat(reply).isEqualTo("hello");
        await().atMost(Duration.ofSeconds(10)).until(() -> heard.contains("complete"));
        assertThat(heard).containsExactly("message hello", "half-close", "complete");
        assertThat(released).hasValue(1);
    }

    @Test
    void reset_endsACallWhoseClientReadsNothing_droppingWhatWasQueuedForIt() {
        start(IN_TIME_BOUND); // its last call half-closes at once
        Started flood = call(FLOOD, "go", true, 0);

        assertThat(floodReset).succeedsWithin(Duration.ofSeconds(10)).as("the call's Context was captured")
                .isEqualTo(true);
        // Closed in the server's transport while the client reads nothing: a close with a status would wait there
        // behind the 1 MiB queued, as long as the client does not read it.
        assertThat(floodCancelled).succeedsWithin(Duration.ofSeconds(10));
        // grpc-java's client reports the reset once it has handed out the messages it holds itself (its 64 KiB
        // window); of the 1024 sent, the rest were dropped at the server.
        flood.call().request(Integer.MAX_VALUE);
        await().atMost(Duration.ofSeconds(10)).until(flood.closed()::isDone);
        assertThat(flood.closed().join().getCode()).isEqualTo(Status.Code.CANCELLED);
        assertThat(floodReceived.get()).isLessThan(1024);
        // The connection's window is not held by the reset stream: the next call on it is served.
        assertThat(ClientCalls.blockingUnaryCall(channel, ECHO, CallOptions.DEFAULT.withDeadlineAfter(30,
                TimeUnit.SECONDS), "after")).isEqualTo("after");
    }

    @Test
    void reset_outsideACapturedCall_doesNothing_andSaysSo() {
        assertThat(CallReset.current().reset("no call")).isFalse();
    }
}
