package io.moemesh.service.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.grpc.BindableService;
import io.grpc.CallOptions;
import io.grpc.ConnectivityState;
import io.grpc.InsecureServerCredentials;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import io.moemesh.service.testing.TextRpc;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** A real Netty server on loopback: which thread runs a call's handler, the port checks, calls per connection. */
class GrpcServerLifecycleTest {

    private static MethodDescriptor<String, String> method(String name) {
        return TextRpc.method(MethodDescriptor.MethodType.BIDI_STREAMING, "test.Threads", name);
    }

    private static final MethodDescriptor<String, String> DIRECT = method("Direct");
    private static final MethodDescriptor<String, String> POOLED = method("Pooled");

    /** Answers every message with the name of the thread its handler ran on. */
    private static final BindableService THREADS = () -> ServerServiceDefinition.builder("test.Threads")
            .addMethod(DIRECT, ServerCalls.asyncBidiStreamingCall(GrpcServerLifecycleTest::threadNames))
            .addMethod(POOLED, ServerCalls.asyncBidiStreamingCall(GrpcServerLifecycleTest::threadNames))
            .build();

    private static StreamObserver<String> threadNames(StreamObserver<String> out) {
        return new StreamObserver<>() {
            @Override
            public void onNext(String value) {
                out.onNext(Thread.currentThread().getName());
            }

            @Override
            public void onError(Throwable t) {
            }

            @Override
            public void onCompleted() {
                out.onCompleted();
            }
        };
    }

    /**
     * The thread that handled the second message of a stream: grpc-java looks the method up (and asks for its
     * executor) on the default executor, so the first messages of a call may still be handled there.
     */
    private String secondMessageThread(MethodDescriptor<String, String> method) throws InterruptedException {
        BlockingQueue<String> replies = new LinkedBlockingQueue<>();
        StreamObserver<String> requests = ClientCalls.asyncBidiStreamingCall(channel.newCall(method, CallOptions.DEFAULT),
                new StreamObserver<>() {
                    @Override
                    public void onNext(String value) {
                        replies.add(value);
                    }

                    @Override
                    public void onError(Throwable t) {
                        replies.add("error: " + t);
                    }

                    @Override
                    public void onCompleted() {
                    }
                });
        requests.onNext("1");
        assertThat(replies.poll(10, TimeUnit.SECONDS)).isNotNull();
        requests.onNext("2");
        String second = replies.poll(10, TimeUnit.SECONDS);
        requests.onCompleted();
        return second;
    }

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
    void transportThreadMethods_runOnTheEventLoop_othersOnTheDefaultExecutor() throws InterruptedException {
        server = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(), 1 << 20,
                Duration.ofSeconds(1), List.of(THREADS), List.of(), Set.of(DIRECT.getFullMethodName()));
        server.start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        // grpc-java names its Netty event loop threads *-ELG-*; its default executor grpc-default-executor-N.
        assertThat(secondMessageThread(DIRECT)).contains("ELG");
        assertThat(secondMessageThread(POOLED)).startsWith("grpc-default-executor");
    }

    @Test
    void withoutTransportThreadMethods_everyCallRunsOnTheDefaultExecutor() throws InterruptedException {
        server = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(), 1 << 20,
                Duration.ofSeconds(1), List.of(THREADS), List.of());
        server.start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        assertThat(secondMessageThread(DIRECT)).startsWith("grpc-default-executor");
    }

    /**
     * The server pings idle connections (a client that vanished without closing its connection is dropped when a
     * ping goes unanswered): a live client answers, and its idle stream stays open past a ping (grpc-java raises the
     * 100 ms asked for to its 10 s least, hence the 12 s looked at).
     */
    @Test
    void keepAlive_pingsAnIdleClient_whoseStreamStaysOpen_andNonPositiveSettingsAreRefused() {
        server = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(), 1 << 20,
                Duration.ofSeconds(1), List.of(THREADS), List.of())
                .keepAlive(Duration.ofMillis(100), Duration.ofSeconds(1));
        server.start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        BlockingQueue<Object> watched = new LinkedBlockingQueue<>();
        HealthGrpc.newStub(channel).watch(HealthCheckRequest.getDefaultInstance(), new StreamObserver<>() {
            @Override
            public void onNext(HealthCheckResponse r) {
                watched.add(r.getStatus());
            }

            @Override
            public void onError(Throwable t) {
                watched.add(t);
            }

            @Override
            public void onCompleted() {
                watched.add("completed");
            }
        });
        await().atMost(Duration.ofSeconds(10)).until(() -> watched.contains(ServingStatus.SERVING));
        await().during(Duration.ofSeconds(12)).atMost(Duration.ofSeconds(20)).until(() -> watched.size() == 1);
        assertThatThrownBy(() -> server.keepAlive(Duration.ZERO, Duration.ofSeconds(1)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("test: keepalive time and timeout must be > 0, got PT0S and PT1S");
    }

    /**
     * A client that went silent (it sent the HTTP/2 preface and nothing since: a vanished gateway) is pinged once its
     * connection has been idle for the keepalive time, and the connection is closed when the ping goes unanswered.
     * grpc-java raises any keepalive time below 10 s to 10 s, so the ping comes after 10 s; with the keepalive not
     * applied none would come within the 20 s looked at (the default is 30 s; Netty's own, never).
     */
    @Test
    void keepAlive_pingsASilentClient_andClosesItsConnectionWhenThePingGoesUnanswered() throws IOException {
        server = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(), 1 << 20,
                Duration.ofSeconds(1), List.of(THREADS), List.of())
                .keepAlive(Duration.ofMillis(200), Duration.ofMillis(500));
        server.start();
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), server.port())) {
            socket.setSoTimeout(20_000);
            OutputStream out = socket.getOutputStream();
            out.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            out.write(new byte[] {0, 0, 0, 4, 0, 0, 0, 0, 0}); // an empty SETTINGS frame, never a PING ack
            out.flush();
            DataInputStream in = new DataInputStream(socket.getInputStream());
            boolean pinged = false;
            boolean closed = false;
            long giveUp = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            try {
                while (System.nanoTime() - giveUp < 0) { // HTTP/2 frames: length (24 bits), type, flags, stream, payload
                    int length = in.readUnsignedShort() << 8 | in.readUnsignedByte();
                    int type = in.readUnsignedByte();
                    int flags = in.readUnsignedByte();
                    in.readInt();
                    in.skipNBytes(length);
                    pinged |= type == 6 && (flags & 1) == 0; // a PING, not an ACK
                }
            } catch (SocketTimeoutException e) {
                // open and silent for 20 s: not closed
            } catch (IOException e) { // the end of the stream, or a reset
                closed = true;
            }
            assertThat(pinged).as("the server pinged the idle connection").isTrue();
            assertThat(closed).as("the server closed the connection whose ping went unanswered").isTrue();
        }
    }

    private ServingStatus status(String service) {
        return HealthGrpc.newBlockingStub(channel).check(HealthCheckRequest.newBuilder().setService(service).build())
                .getStatus();
    }

    @Test
    void startNotServing_reportsNotServingUntilSet_forServiceAndServer() {
        server = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(), 1 << 20, Duration.ofSeconds(1), List.of(THREADS),
                List.of()).startNotServing();
        server.start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        assertThat(List.of(status(""), status("test.Threads"))).containsOnly(ServingStatus.NOT_SERVING);
        server.setServing(true);
        assertThat(List.of(status(""), status("test.Threads"))).containsOnly(ServingStatus.SERVING);
        server.setServing(false);
        assertThat(List.of(status(""), status("test.Threads"))).containsOnly(ServingStatus.NOT_SERVING);
    }

    @Test
    void byDefault_servingFromStart() {
        server = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(), 1 << 20, Duration.ofSeconds(1), List.of(THREADS),
                List.of());
        server.start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        assertThat(List.of(status(""), status("test.Threads"))).containsOnly(ServingStatus.SERVING);
    }

    /** Opens Health/Watch(""): each status into {@code watched}, the stream's end status into {@code ended}. */
    private void watch(BlockingQueue<ServingStatus> watched, CompletableFuture<Status> ended) {
        HealthGrpc.newStub(channel).watch(HealthCheckRequest.newBuilder().setService("").build(), new StreamObserver<>() {
            @Override
            public void onNext(HealthCheckResponse r) {
                watched.add(r.getStatus());
            }

            @Override
            public void onError(Throwable t) {
                ended.complete(Status.fromThrowable(t));
            }

            @Override
            public void onCompleted() {
                ended.complete(Status.OK);
            }
        });
    }

    @Test
    void setServing_whileStopping_keepsTheTerminalNotServing() throws Exception {
        server = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(), 1 << 20,
                Duration.ofSeconds(30), List.of(THREADS), List.of());
        server.start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        // An open call holds the graceful stop (up to its 30 s grace) until the client ends it, so the setServing
        // below lands during the stop, and the health manager it would change is still the one being stopped. Its
        // status is read in-process: the server refuses new calls and ends the health watches at once.
        BlockingQueue<String> replies = new LinkedBlockingQueue<>();
        StreamObserver<String> held = ClientCalls.asyncBidiStreamingCall(channel.newCall(POOLED, CallOptions.DEFAULT),
                new StreamObserver<>() {
                    @Override
                    public void onNext(String value) {
                        replies.add(value);
                    }

                    @Override
                    public void onError(Throwable t) {
                        replies.add("error: " + t);
                    }

                    @Override
                    public void onCompleted() {
                    }
                });
        held.onNext("open");
        assertThat(replies.poll(10, TimeUnit.SECONDS)).doesNotStartWith("error");
        HealthGrpc.AsyncService health = (HealthGrpc.AsyncService) server.health().getHealthService();
        GrpcServerLifecycle stopping = server;
        server = null;
        CompletableFuture<Void> stopped = CompletableFuture.runAsync(stopping::stop);
        await().atMost(Duration.ofSeconds(10)).until(() -> inProcessStatus(health) == ServingStatus.NOT_SERVING);

        stopping.setServing(true);

        assertThat(stopped).as("the stop still waits for the open call").isNotDone();
        assertThat(inProcessStatus(health)).isEqualTo(ServingStatus.NOT_SERVING);
        held.onCompleted();
        stopped.get(10, TimeUnit.SECONDS);
    }

    /** Health/Check("") answered by the health service itself, not over the (stopping) server. */
    private static ServingStatus inProcessStatus(HealthGrpc.AsyncService health) {
        CompletableFuture<ServingStatus> status = new CompletableFuture<>();
        health.check(HealthCheckRequest.newBuilder().setService("").build(), new StreamObserver<>() {
            @Override
            public void onNext(HealthCheckResponse r) {
                status.complete(r.getStatus());
            }

            @Override
            public void onError(Throwable t) {
                status.completeExceptionally(t);
            }

            @Override
            public void onCompleted() {
            }
        });
        return status.join();
    }

    /**
     * grpc-java's terminal health state only sends NOT_SERVING to watchers; the server ends their streams, so an
     * open watch (every gateway holds one on each expert-service) does not hold a graceful stop for its grace.
     */
    @Test
    void stop_withAnOpenHealthWatch_sendsNotServingThenEndsTheWatch_longBeforeTheGrace() throws Exception {
        server = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(), 1 << 20,
                Duration.ofSeconds(30), List.of(THREADS), List.of());
        server.start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        BlockingQueue<ServingStatus> watched = new LinkedBlockingQueue<>();
        CompletableFuture<Status> ended = new CompletableFuture<>();
        watch(watched, ended);
        assertThat(watched.poll(10, TimeUnit.SECONDS)).isEqualTo(ServingStatus.SERVING);

        GrpcServerLifecycle stopping = server;
        server = null;
        CompletableFuture.runAsync(stopping::stop).get(15, TimeUnit.SECONDS);

        assertThat(watched.poll(10, TimeUnit.SECONDS)).isEqualTo(ServingStatus.NOT_SERVING);
        Status end = ended.get(10, TimeUnit.SECONDS);
        assertThat(end.getCode()).as(String.valueOf(end)).isEqualTo(Status.Code.UNAVAILABLE);
        assertThat(end.getDescription()).isEqualTo("server shutting down");
        assertThat(watched).isEmpty();
    }

    @Test
    void stoppedAndStartedAgain_reportsServingAgain() {
        server = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(), 1 << 20,
                Duration.ofSeconds(1), List.of(THREADS), List.of());
        server.start();
        server.stop();
        server.start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        assertThat(HealthGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                .check(HealthCheckRequest.newBuilder().setService("test.Threads").build()).getStatus())
                .isEqualTo(ServingStatus.SERVING);
    }

    /** A bidi call on {@link #channel} whose replies (or "error") land in {@code replies}. */
    private StreamObserver<String> open(BlockingQueue<String> replies) {
        return ClientCalls.asyncBidiStreamingCall(channel.newCall(POOLED, CallOptions.DEFAULT), new StreamObserver<>() {
            @Override
            public void onNext(String value) {
                replies.add(value);
            }

            @Override
            public void onError(Throwable t) {
                replies.add("error: " + t);
            }

            @Override
            public void onCompleted() {
            }
        });
    }

    @Test
    void maxCallsPerConnection_aFurtherCallWaitsInTheClient_untilAnOpenOneEnds() throws InterruptedException {
        server = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(), 1 << 20,
                Duration.ofSeconds(1), List.of(THREADS), List.of()).maxCallsPerConnection(1, "moemesh.test.max-calls");
        server.start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        BlockingQueue<String> first = new LinkedBlockingQueue<>();
        StreamObserver<String> open = open(first);
        open.onNext("1");
        assertThat(first.poll(10, TimeUnit.SECONDS)).isNotNull();

        BlockingQueue<String> second = new LinkedBlockingQueue<>();
        open(second).onNext("2");
        await().during(Duration.ofMillis(300)).atMost(Duration.ofSeconds(5)).until(second::isEmpty);
        open.onCompleted();
        assertThat(second.poll(10, TimeUnit.SECONDS)).as("served once the first call ended, not refused")
                .isNotNull().doesNotStartWith("error");
    }

    /**
     * A drain's GOAWAY: the client's connection stops being READY at once (its next call opens a new connection:
     * behind a Kubernetes Service, to another pod), while the call in flight on it goes on to its end.
     */
    @Test
    void sendGoAway_theOpenConnectionLeavesReady_whileItsCallInFlightGoesOn() throws InterruptedException {
        server = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(), 1 << 20,
                Duration.ofSeconds(5), List.of(THREADS), List.of());
        server.start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        BlockingQueue<String> replies = new LinkedBlockingQueue<>();
        StreamObserver<String> inFlight = open(replies);
        inFlight.onNext("1");
        assertThat(replies.poll(10, TimeUnit.SECONDS)).isNotNull().doesNotStartWith("error");
        assertThat(channel.getState(false)).isEqualTo(ConnectivityState.READY);

        server.sendGoAway();

        await().atMost(Duration.ofSeconds(10)).until(() -> channel.getState(false) != ConnectivityState.READY);
        inFlight.onNext("2");
        assertThat(replies.poll(10, TimeUnit.SECONDS)).as("the call in flight is still served").isNotNull()
                .doesNotStartWith("error");
        // The listener is closed too: a new call cannot reach this server any more.
        assertThatThrownBy(() -> HealthGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                .check(HealthCheckRequest.getDefaultInstance()))
                .isInstanceOfSatisfying(StatusRuntimeException.class,
                        e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE));
        inFlight.onCompleted();
    }

    @Test
    void maxCallsPerConnection_belowOne_isRefused_namingTheSetting() {
        assertThatThrownBy(() -> new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(),
                1 << 20, Duration.ofSeconds(1), List.of(THREADS), List.of()).maxCallsPerConnection(0, "moemesh.x.calls"))
                .isInstanceOf(IllegalArgumentException.class).hasMessage("moemesh.x.calls must be ≥ 1, got 0");
    }

    @Test
    void portOutOfRange_isRefused_namingTheServer() {
        assertThatThrownBy(() -> new GrpcServerLifecycle("expert-service x", "127.0.0.1", 70000,
                InsecureServerCredentials.create(), 1 << 20, Duration.ofSeconds(1), List.of(THREADS), List.of()))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("expert-service x: gRPC port must be in [0, 65535], got 70000");
    }
}
