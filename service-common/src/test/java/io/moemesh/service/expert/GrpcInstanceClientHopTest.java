package io.moemesh.service.expert;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.awaitility.Awaitility.await;

import io.grpc.InsecureChannelCredentials;
import io.grpc.InsecureServerCredentials;
import io.grpc.MethodDescriptor;
import io.grpc.ServerServiceDefinition;
import io.grpc.ServiceDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.grpc.HopBufferPool;
import io.moemesh.service.grpc.TensorCodec;
import io.moemesh.service.grpc.UnixSocketSecurity;
import io.opentelemetry.api.OpenTelemetry;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The gateway's zero-copy client on the hop, against fake instances on real loopback sockets (the generated
 * protobuf code on the server side, so the wire format is checked against it): results bit-identical to the
 * generated codec, bad replies fail their own call with a message naming the fault, a peer that stops reading
 * has its stream ended instead of buffered while a burst to one that reads is never refused, and every pool chunk is
 * back after each case.
 */
class GrpcInstanceClientHopTest {
    private final List<GrpcServerLifecycle> servers = new ArrayList<>();

    @AfterEach
    void stopAndCountChunks() {
        servers.forEach(GrpcServerLifecycle::stop);
        await("every hop buffer back in the pool").until(() -> HopBufferPool.shared().outstanding() == 0);
    }

    /** The reply a fake instance sends for a request (raw bytes: it may be malformed on purpose), or null for none. */
    private GrpcServerLifecycle instance(Function<ExpertBatchRequest, byte[]> reply) {
        MethodDescriptor<byte[], byte[]> raw = ExpertServiceGrpc.getExpertBatchMethod().toBuilder(BYTES, BYTES).build();
        ServiceDescriptor sd = ServiceDescriptor.newBuilder(ExpertServiceGrpc.SERVICE_NAME).addMethod(raw).build();
        ServerServiceDefinition def = ServerServiceDefinition.builder(sd).addMethod(raw,
                ServerCalls.asyncBidiStreamingCall((StreamObserver<byte[]> out) -> new StreamObserver<byte[]>() {
                    @Override
                    public void onNext(byte[] b) {
                        try {
                            byte[] r = reply.apply(ExpertBatchRequest.parseFrom(b));
                            if (r != null) {
                                out.onNext(r);
                            }
                        } catch (IOException e) {
                            throw new UncheckedIOException(e);
                        }
                    }

                    @Override
                    public void onError(Throwable t) {
                    }

                    @Override
                    public void onCompleted() {
                        out.onCompleted();
                    }
                })).build();
        GrpcServerLifecycle s = new GrpcServerLifecycle("fake expert", "127.0.0.1", 0, InsecureServerCredentials.create(),
                64 << 20, Duration.ofMillis(100), List.of(() -> def), List.of());
        s.start();
        servers.add(s);
        return s;
    }

    private static final MethodDescriptor.Marshaller<byte[]> BYTES = new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(byte[] value) {
            return new ByteArrayInputStream(value);
        }

        @Override
        public byte[] parse(InputStream stream) {
            try {
                return stream.readAllBytes();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    };

    /** Echo through the generated classes: the request's tensor is the reply's outputs, bytes untouched. */
    private static byte[] echo(ExpertBatchRequest r) {
        return ExpertBatchResponse.newBuilder().setBatchId(r.getBatchId()).setLayer(r.getLayer())
                .setOutputs(r.getActivations()).build().toByteArray();
    }

    private static GrpcInstanceClient client(GrpcServerLifecycle s, DType wire) {
        return new GrpcInstanceClient("expert-0", "127.0.0.1:" + s.port(), InsecureChannelCredentials.create(), wire, 64 << 20);
    }

    private static ExpertCall call(int rows, int hidden, long seed) {
        Random r = new Random(seed);
        float[] x = new float[rows * hidden];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        int[] counts = new int[rows];
        Arrays.fill(counts, 1);
        float[] w = new float[rows];
        Arrays.fill(w, 1f);
        return new ExpertCall(1, 0, x, rows, hidden, counts, new int[rows], w);
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"DTYPE_F32", "DTYPE_BF16"})
    void echo_resultIsBitIdenticalToTheGeneratedCodec(DType wire) throws Exception {
        GrpcServerLifecycle s = instance(GrpcInstanceClientHopTest::echo);
        try (GrpcInstanceClient client = client(s, wire)) {
            for (int[] shape : new int[][] {{1, 1024}, {32, 4096}, {3, 777}}) {
                ExpertCall c = call(shape[0], shape[1], shape[0] * 7L + shape[1]);
                float[] expected = new float[c.activations().length];
                TensorCodec.decode(TensorCodec.encode(c.activations(), 0, c.rows(), c.hidden(), wire), "x", c.rows(),
                        c.hidden(), expected, 0);

                assertThat(client.call(c).get(10, TimeUnit.SECONDS)).containsExactly(expected);
            }
        }
    }

    /**
     * The gateway's replica pickers weigh an instance's calls in flight; the engine, woken by a reply, picks the next
     * layer's replicas at once, possibly before the transport thread that completed the reply runs again.
     */
    @Test
    void aCallWhoseReplyArrived_isNoLongerInFlight_whenItsFutureCompletes() throws Exception {
        GrpcServerLifecycle s = instance(GrpcInstanceClientHopTest::echo);
        try (GrpcInstanceClient client = client(s, DType.DTYPE_F32)) {
            for (int i = 0; i < 20; i++) {
                CompletableFuture<Integer> inFlightSeenByCaller = client.call(call(1, 256, i))
                        .thenApply(reply -> client.inFlight());

                assertThat(inFlightSeenByCaller.get(10, TimeUnit.SECONDS)).as("call %d", i).isZero();
            }
        }
    }

    @Test
    void replyWhoseBytesDoNotMatchItsShape_failsThatCall_namingTheSizes_andTheStreamGoesOn() throws Exception {
        GrpcServerLifecycle s = instance(r -> r.getLayer() == 1
                ? ExpertBatchResponse.newBuilder().setBatchId(r.getBatchId()).setOutputs(r.getActivations().toBuilder()
                        .setData(r.getActivations().getData().substring(0, 4 * 1024 - 4))).build().toByteArray()
                : echo(r));
        try (GrpcInstanceClient client = client(s, DType.DTYPE_F32)) {
            ExpertCall good = call(1, 1024, 1);
            ExpertCall bad = new ExpertCall(1, 1, good.activations(), 1, 1024, good.counts(), good.experts(), good.weights());

            assertThatThrownBy(() -> client.call(bad).get(10, TimeUnit.SECONDS)).cause()
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("expert-0 outputs: 4092 bytes of DTYPE_F32 data, expected 4096 (truncated or padded payload)");
            assertThat(client.call(good).get(10, TimeUnit.SECONDS)).containsExactly(good.activations());
        }
    }

    /**
     * An instance refusing the call's placement epoch (ErrorInfo STALE_EPOCH / EPOCH_NOT_LOADED, as the expert-service
     * sends it) fails that call with an {@link EpochRefusedException}, whose status code is still FAILED_PRECONDITION;
     * any other FAILED_PRECONDITION (an expert not held) stays a plain status.
     */
    @Test
    void epochRefusal_failsTheCallWithAnEpochRefusedException_otherPreconditionFailuresStayPlainStatuses() throws Exception {
        GrpcServerLifecycle s = instance(r -> {
            String reason = switch (r.getLayer()) {
                case 1 -> EpochRefusedException.STALE_EPOCH;
                case 2 -> EpochRefusedException.EPOCH_NOT_LOADED;
                case 3 -> "EXPERT_NOT_HELD";
                default -> null;
            };
            if (reason == null) {
                return echo(r);
            }
            return ExpertBatchResponse.newBuilder().setBatchId(r.getBatchId()).setStatus(com.google.rpc.Status.newBuilder()
                    .setCode(Status.Code.FAILED_PRECONDITION.value()).setMessage("refused at layer " + r.getLayer())
                    .addDetails(com.google.protobuf.Any.pack(com.google.rpc.ErrorInfo.newBuilder().setReason(reason)
                            .setDomain("expert.moemesh.io").putMetadata("serving_epoch", "2").build())))
                    .build().toByteArray();
        });
        try (GrpcInstanceClient client = client(s, DType.DTYPE_F32)) {
            ExpertCall good = call(1, 64, 4);
            for (int layer = 1; layer <= 3; layer++) {
                ExpertCall c = new ExpertCall(1, layer, good.activations(), 1, 64, good.counts(), good.experts(),
                        good.weights());
                Throwable failed = catchThrowable(() -> client.call(c).get(10, TimeUnit.SECONDS)).getCause();

                assertThat(Status.fromThrowable(failed).getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
                assertThat(failed).hasMessage("FAILED_PRECONDITION: expert-0: refused at layer " + layer);
                if (layer == 3) {
                    assertThat(failed).isInstanceOf(StatusRuntimeException.class);
                } else {
                    assertThat(failed).isInstanceOfSatisfying(EpochRefusedException.class,
                            e -> assertThat(e.stale()).isEqualTo(c.layer() == 1));
                }
            }
            assertThat(client.call(good).get(10, TimeUnit.SECONDS)).as("the stream goes on")
                    .containsExactly(good.activations());
        }
    }

    @Test
    void truncatedReply_failsTheCallsOfThatStream_withInternalNamingIt_andTheNextCallReopens() throws Exception {
        GrpcServerLifecycle s = instance(r -> {
            byte[] whole = echo(r);
            return r.getLayer() == 1 ? Arrays.copyOf(whole, whole.length - 100) : whole;
        });
        try (GrpcInstanceClient client = client(s, DType.DTYPE_F32)) {
            ExpertCall good = call(2, 512, 2);
            ExpertCall bad = new ExpertCall(1, 1, good.activations(), 2, 512, good.counts(), good.experts(), good.weights());

            assertThatThrownBy(() -> client.call(bad).get(10, TimeUnit.SECONDS)).cause()
                    .isInstanceOf(StatusRuntimeException.class)
                    .satisfies(e -> assertThat(((StatusRuntimeException) e).getStatus().getCode()).isEqualTo(Status.Code.INTERNAL))
                    .hasMessageContaining("expert-0: a reply is not a valid moemesh.expert.v1.ExpertBatchResponse")
                    .hasMessageContaining("truncated message");
            assertThat(client.call(good).get(10, TimeUnit.SECONDS)).containsExactly(good.activations());
        }
    }

    @Test
    void cancelledCalls_andAClosedClient_leaveNoBufferOut() throws Exception {
        GrpcServerLifecycle s = instance(r -> null);
        GrpcInstanceClient client = client(s, DType.DTYPE_BF16);
        List<CompletableFuture<float[]>> calls = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            calls.add(client.call(call(16, 1024, i)));
        }
        calls.forEach(f -> f.cancel(false));
        await().until(() -> client.inFlight() == 0);
        client.close();
    }

    @Test
    void instanceDiesWithTheReplyOutstanding_failsTheCall() throws Exception {
        CountDownLatch received = new CountDownLatch(1);
        GrpcServerLifecycle s = instance(r -> {
            received.countDown();
            return null;
        });
        try (GrpcInstanceClient client = client(s, DType.DTYPE_BF16)) {
            CompletableFuture<float[]> f = client.call(call(8, 2048, 3));
            assertThat(received.await(10, TimeUnit.SECONDS)).isTrue();
            s.stop();
            assertThatThrownBy(() -> f.get(20, TimeUnit.SECONDS)).isInstanceOf(ExecutionException.class);
        }
    }

    /**
     * A step's burst of large messages to one instance that reads normally (prefill: [15, 4096] f32, ~240 KiB each,
     * the rows ExpertBatches puts in a message under a 256 KiB limit): the stream is not ready for most of the burst
     * (more than gRPC's 32 KiB wait for the transport, and a fresh stream is not ready before it is set up), yet no
     * call is refused: the instance takes the messages and answers them.
     */
    @Test
    void burstOfLargeMessagesToAnInstanceThatReads_noneRefused_thoughTheStreamIsNotReadyDuringIt() throws Exception {
        GrpcServerLifecycle s = instance(GrpcInstanceClientHopTest::echo);
        try (GrpcInstanceClient client = client(s, DType.DTYPE_F32)) {
            List<ExpertCall> calls = new ArrayList<>();
            for (int i = 0; i < 40; i++) {
                calls.add(call(15, 4096, i));
            }
            List<CompletableFuture<float[]>> sent = new ArrayList<>();
            for (ExpertCall c : calls) {
                sent.add(client.call(c));
            }

            for (int i = 0; i < calls.size(); i++) {
                assertThat(sent.get(i).get(30, TimeUnit.SECONDS)).as("call %d", i)
                        .isEqualTo(calls.get(i).activations());
            }
        }
    }

    /** An instance that takes no message ever (it never asks for one); {@code reset} counts down when its stream is reset. */
    private GrpcServerLifecycle stuckInstance(CountDownLatch reset) {
        MethodDescriptor<byte[], byte[]> raw = ExpertServiceGrpc.getExpertBatchMethod().toBuilder(BYTES, BYTES).build();
        ServerServiceDefinition def = ServerServiceDefinition.builder(ServiceDescriptor.newBuilder(ExpertServiceGrpc.SERVICE_NAME)
                .addMethod(raw).build()).addMethod(raw, ServerCalls.asyncBidiStreamingCall((StreamObserver<byte[]> out) -> {
                    ((ServerCallStreamObserver<byte[]>) out).disableAutoRequest();
                    return new StreamObserver<byte[]>() {
                        @Override
                        public void onNext(byte[] value) {
                        }

                        @Override
                        public void onError(Throwable t) {
                            reset.countDown();
                        }

                        @Override
                        public void onCompleted() {
                        }
                    };
                })).build();
        GrpcServerLifecycle stuck = new GrpcServerLifecycle("stuck expert", "127.0.0.1", 0, InsecureServerCredentials.create(),
                64 << 20, Duration.ofMillis(100), List.of(() -> def), List.of());
        stuck.start();
        servers.add(stuck);
        return stuck;
    }

    private static GrpcInstanceClient client(GrpcServerLifecycle s, Duration stallBound) {
        return new GrpcInstanceClient("expert-0", "127.0.0.1:" + s.port(), InsecureChannelCredentials.create(),
                UnixSocketSecurity.PEER_UID, DType.DTYPE_F32, 64 << 20, OpenTelemetry.noop(), stallBound, SharedMemory.OFF);
    }

    private static void assertNotRead(Throwable failed) {
        assertThat(failed).isInstanceOf(ExecutionException.class);
        assertThat(Status.fromThrowable(failed.getCause()).getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
        assertThat(failed.getCause()).hasMessageContaining("expert-0: the ExpertBatch stream is not being read");
    }

    /**
     * A peer that stops reading: HTTP/2 flow control stops the sender once the windows are full, the messages after
     * wait for the transport, and nothing moves. Once the stall bound passes with nothing taken and no reply, the
     * stream is reset (what waited is freed, the instance sees its end) and every call sent on it fails with
     * RESOURCE_EXHAUSTED; another instance's stream is not affected.
     */
    @Test
    void peerThatStopsReading_streamResetAfterTheStallBound_itsCallsFailResourceExhausted_otherStreamsUnaffected()
            throws Exception {
        CountDownLatch reset = new CountDownLatch(1);
        GrpcServerLifecycle stuck = stuckInstance(reset);
        GrpcServerLifecycle healthy = instance(GrpcInstanceClientHopTest::echo);
        // The bound is far longer than the loop takes, yet a machine stalled for longer in mid-loop ends the first
        // stream there; the calls after go on a new stream, which may take them all and stay ready (nothing to time).
        try (GrpcInstanceClient toStuck = client(stuck, Duration.ofSeconds(2));
             GrpcInstanceClient toHealthy = client(healthy, DType.DTYPE_F32)) {
            List<CompletableFuture<float[]>> sent = new ArrayList<>();
            // Calls sent while the first is still waiting went on the first stream: its end (under the send lock)
            // fails the first call before another send can open a new stream.
            int onFirstStream = 0;
            for (int i = 0; i < 256; i++) {
                sent.add(toStuck.call(call(16, 1024, i))); // 16 MiB: far past what the windows let through
                if (!sent.getFirst().isDone()) {
                    onFirstStream = i + 1;
                }
            }

            for (CompletableFuture<float[]> f : sent.subList(0, onFirstStream)) {
                assertNotRead(catchThrowable(() -> f.get(30, TimeUnit.SECONDS)));
            }
            for (CompletableFuture<float[]> f : sent.subList(onFirstStream, sent.size())) {
                // On the first stream, or on a later one that filled up too, or waiting on one that took them all.
                if (!f.cancel(false)) {
                    assertNotRead(catchThrowable(() -> f.get(30, TimeUnit.SECONDS)));
                }
            }
            assertThat(reset.await(30, TimeUnit.SECONDS)).as("the stream was reset: its waiting messages freed").isTrue();
            await("no failed call left in flight").atMost(Duration.ofSeconds(30)).until(() -> toStuck.inFlight() == 0);
            ExpertCall c = call(4, 1024, 9);
            assertThat(toHealthy.call(c).get(10, TimeUnit.SECONDS)).containsExactly(c.activations());
        }
    }

    /**
     * A send that itself makes the stream not ready (one message larger than the windows, on a stream that was
     * ready) is timed from that send: nothing more is sent, yet the stream is reset after the bound and the call
     * fails. Looked at only before each send, the message waited for the transport, unfreed, until a next send.
     */
    @Test
    void sendThatMakesTheStreamNotReady_isTimedFromThatSend_theStreamIsResetWithoutAnotherSend() throws Exception {
        CountDownLatch reset = new CountDownLatch(1);
        GrpcServerLifecycle stuck = stuckInstance(reset);
        Duration bound = Duration.ofMillis(500);
        try (GrpcInstanceClient client = client(stuck, bound)) {
            client.call(call(1, 8, 0)); // sets the stream up; fits the windows
            // Until the check the fresh stream's first send scheduled (it was not set up yet) has found it ready
            // and stopped the clock: no hook tells when, and only the old code's failure depends on it.
            await().pollDelay(bound.multipliedBy(4)).until(() -> true);

            CompletableFuture<float[]> large = client.call(call(1024, 4096, 1)); // 16 MiB
            assertNotRead(catchThrowable(() -> large.get(30, TimeUnit.SECONDS)));
            assertThat(reset.await(30, TimeUnit.SECONDS)).as("the stream was reset: the message freed").isTrue();
        }
    }

    @Test
    void nothingListening_callsFailPromptly_evenWhenTheStreamFailsInsideItsStart_thenSucceedOnceAnInstanceListens()
            throws Exception {
        GrpcServerLifecycle probe = instance(GrpcInstanceClientHopTest::echo);
        int port = probe.port();
        probe.stop();
        servers.remove(probe);
        try (GrpcInstanceClient client = new GrpcInstanceClient("expert-0", "127.0.0.1:" + port,
                InsecureChannelCredentials.create(), DType.DTYPE_F32, 1 << 20)) {
            // The first call waits for the connection attempt; once the channel is in TRANSIENT_FAILURE a call
            // fails inside start() on the calling thread (direct executor): neither may hang or keep a dead stream.
            for (int i = 0; i < 3; i++) {
                assertThatThrownBy(() -> client.call(call(1, 8, 1)).get(10, TimeUnit.SECONDS))
                        .isInstanceOf(ExecutionException.class)
                        .satisfies(e -> assertThat(Status.fromThrowable(e.getCause()).getCode()).isEqualTo(Status.Code.UNAVAILABLE));
            }
            GrpcServerLifecycle late = new GrpcServerLifecycle("fake expert", "127.0.0.1", port,
                    InsecureServerCredentials.create(), 1 << 20, Duration.ofMillis(100),
                    List.of(() -> instanceDefinition()), List.of());
            late.start();
            servers.add(late);
            ExpertCall c = call(1, 8, 2);
            await().atMost(Duration.ofSeconds(30)).ignoreExceptions()
                    .until(() -> Arrays.equals(client.call(c).get(10, TimeUnit.SECONDS), c.activations()));
        }
    }

    private static ServerServiceDefinition instanceDefinition() {
        return new ExpertServiceGrpc.ExpertServiceImplBase() {
            @Override
            public StreamObserver<ExpertBatchRequest> expertBatch(StreamObserver<ExpertBatchResponse> out) {
                return new StreamObserver<>() {
                    @Override
                    public void onNext(ExpertBatchRequest r) {
                        out.onNext(ExpertBatchResponse.newBuilder().setBatchId(r.getBatchId())
                                .setOutputs(r.getActivations()).build());
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
        }.bindService();
    }
}
