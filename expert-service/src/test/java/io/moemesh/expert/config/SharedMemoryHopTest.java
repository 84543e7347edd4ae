package io.moemesh.expert.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.google.protobuf.ByteString;
import io.grpc.ClientInterceptors;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.stub.MetadataUtils;
import io.grpc.stub.StreamObserver;
import io.moemesh.expert.ExpertServiceApplication;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.common.v1.ArenaRegion;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.common.v1.Tensor;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.service.expert.ExpertBatchWire;
import io.moemesh.service.expert.ExpertCall;
import io.moemesh.service.expert.GrpcInstanceClient;
import io.moemesh.service.expert.SharedMemory;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.grpc.InstanceEndpoint;
import io.moemesh.service.grpc.TensorArena;
import io.moemesh.service.grpc.TensorArrayPool;
import io.moemesh.service.grpc.TensorCodec;
import io.moemesh.service.grpc.UnixSocketSecurity;
import io.opentelemetry.api.OpenTelemetry;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * The shared-memory hop: an expert-service (cpu backend, mixtral-tiny) on a peer-uid domain socket maps the arena a
 * same-host client offers, the outputs come back through the same slot with the same bits as in the messages, and
 * an arena over TCP, a file that is not an arena, or a region that is not a slot is refused without harm.
 */
class SharedMemoryHopTest {
    @TempDir
    static Path dir;
    private static ConfigurableApplicationContext ctx;
    private static Path socket;
    private static int hidden;

    @BeforeAll
    static void start() throws Exception {
        assumeTrue(InstanceEndpoint.domainSocketsAvailable());
        socket = dir.resolve("expert-0.sock");
        hidden = ModelConfigReader.read(TestModels.dir(TestModels.MIXTRAL)).hiddenSize();
        ctx = new SpringApplicationBuilder(ExpertServiceApplication.class).run(
                "--moemesh.expert.model-dir=" + TestModels.dir(TestModels.MIXTRAL), "--moemesh.expert.grpc-port=0",
                "--server.port=0", "--management.server.port=0", "--moemesh.expert.tls.mode=plaintext",
                "--moemesh.expert.backend=cpu", "--moemesh.expert.assign-all=true",
                "--moemesh.expert.grpc-unix-socket=" + socket);
    }

    @AfterAll
    static void stop() {
        if (ctx != null) {
            ctx.close();
        }
    }

    private static GrpcInstanceClient client(SharedMemory shm, DType wire) {
        return new GrpcInstanceClient("expert-0", "unix://" + socket, InsecureChannelCredentials.create(),
                UnixSocketSecurity.PEER_UID, wire, 64 << 20, OpenTelemetry.noop(),
                GrpcInstanceClient.DEFAULT_STALL_BOUND, shm);
    }

    private static ExpertCall call(int rows, long seed) {
        Random r = new Random(seed);
        float[] x = new float[rows * hidden];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        int[] counts = new int[rows];
        int[] experts = new int[2 * rows];
        float[] weights = new float[2 * rows];
        for (int t = 0; t < rows; t++) {
            counts[t] = 2;
            experts[2 * t] = t % 8;
            experts[2 * t + 1] = (t + 3) % 8;
            weights[2 * t] = 0.625f;
            weights[2 * t + 1] = 0.375f;
        }
        return new ExpertCall(0, 1, x, rows, hidden, counts, experts, weights);
    }

    /** The first messages may go before the instance's answer arrived (in the message, same result): until one did not. */
    private static void awaitArenaMapped(GrpcInstanceClient shared) {
        await().atMost(Duration.ofMinutes(1)).until(() -> {
            get(shared, call(1, 0));
            return shared.arenaCalls() > 0;
        });
    }

    private static float[] get(GrpcInstanceClient c, ExpertCall call) throws Exception {
        return c.call(call).get(1, TimeUnit.MINUTES);
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"DTYPE_F32", "DTYPE_BF16"})
    void expertBatch_throughTheArena_sameBitsAsInTheMessages_slotsGivenBack_fileGone(DType wire) throws Exception {
        Path arenas = Files.createDirectories(dir.resolve("arenas-" + wire));
        try (GrpcInstanceClient shared = client(new SharedMemory(4, 64 * 1024, arenas), wire);
             GrpcInstanceClient inline = client(SharedMemory.OFF, wire)) {
            awaitArenaMapped(shared);
            for (int rows : new int[] {1, 3, 8}) {
                ExpertCall c = call(rows, rows);
                long before = shared.arenaCalls();
                float[] viaArena = get(shared, c);
                assertThat(shared.arenaCalls()).isEqualTo(before + 1);
                assertThat(viaArena).as("%d tokens", rows).containsExactly(get(inline, c));
            }
            assertThat(inline.arenaCalls()).isZero();
            assertThat(shared.arenaSlotsInUse()).isZero();
            // the instance mapped it, so the client deleted the file: nothing left behind in the directory
            try (Stream<Path> left = Files.list(arenas)) {
                assertThat(left).isEmpty();
            }
        }
    }

    /**
     * Both ends reuse their tensor arrays (TensorArrayPool: the instance's activations and outputs, the client's
     * replies, given back as the gateway does once summed), in the same JVM here, so every array is taken and given
     * back many times over by the server and the client alike: every reply is still exactly its first one.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"DTYPE_F32", "DTYPE_BF16"})
    void reusedTensorArrays_neverMixOneCallsValuesIntoAnother(DType wire) throws Exception {
        Path arenas = Files.createDirectories(dir.resolve("reuse-" + wire));
        try (GrpcInstanceClient shared = client(new SharedMemory(4, 64 * 1024, arenas), wire);
             GrpcInstanceClient inline = client(SharedMemory.OFF, wire)) {
            awaitArenaMapped(shared);
            float[][] first = new float[4][];
            for (int round = 0; round < 6; round++) {
                for (int seed = 0; seed < first.length; seed++) {
                    ExpertCall c = call(2, 100 + seed);
                    for (GrpcInstanceClient client : List.of(shared, inline)) {
                        float[] got = get(client, c);
                        if (first[seed] == null) {
                            first[seed] = got.clone();
                        }
                        assertThat(got).as("round %d, call %d", round, seed).containsExactly(first[seed]);
                        TensorArrayPool.shared().give(got);
                    }
                }
            }
            assertThat(TensorArrayPool.shared().idleBytes()).isPositive();
        }
    }

    @Test
    void aTensorLargerThanASlot_travelsInTheMessage() throws Exception {
        int rows = 4096 / (4 * hidden) + 1;
        try (GrpcInstanceClient shared = client(new SharedMemory(2, 4096, dir), DType.DTYPE_F32);
             GrpcInstanceClient inline = client(SharedMemory.OFF, DType.DTYPE_F32)) {
            for (int i = 0; i < 3; i++) {
                ExpertCall c = call(rows, i);
                assertThat(get(shared, c)).containsExactly(get(inline, c));
            }
            assertThat(shared.arenaCalls()).isZero();
        }
    }

    /** A raw ExpertBatch stream with {@code arena} in its headers; the instance's answer lands in {@code answer}. */
    private record RawStream(StreamObserver<ExpertBatchRequest> requests, LinkedBlockingQueue<ExpertBatchResponse> replies,
                             AtomicReference<Metadata> answer, ManagedChannel channel) implements AutoCloseable {
        static RawStream open(ManagedChannel channel, String arena) {
            Metadata headers = new Metadata();
            headers.put(ExpertBatchWire.ARENA_HEADER, arena);
            AtomicReference<Metadata> answer = new AtomicReference<>();
            AtomicReference<Metadata> trailers = new AtomicReference<>();
            LinkedBlockingQueue<ExpertBatchResponse> replies = new LinkedBlockingQueue<>();
            StreamObserver<ExpertBatchRequest> requests = ExpertServiceGrpc.newStub(ClientInterceptors.intercept(channel,
                            MetadataUtils.newCaptureMetadataInterceptor(answer, trailers),
                            MetadataUtils.newAttachHeadersInterceptor(headers)))
                    .expertBatch(new StreamObserver<>() {
                        @Override
                        public void onNext(ExpertBatchResponse r) {
                            replies.add(r);
                        }

                        @Override
                        public void onError(Throwable t) {
                        }

                        @Override
                        public void onCompleted() {
                        }
                    });
            return new RawStream(requests, replies, answer, channel);
        }

        ExpertBatchResponse send(ExpertBatchRequest r) throws InterruptedException {
            requests.onNext(r);
            return replies.poll(1, TimeUnit.MINUTES);
        }

        String arenaAnswer() {
            await().atMost(Duration.ofMinutes(1)).until(() -> answer.get() != null);
            return answer.get().get(ExpertBatchWire.ARENA_HEADER);
        }

        @Override
        public void close() {
            requests.onCompleted();
            channel.shutdownNow();
        }
    }

    private static ExpertBatchRequest.Builder request(long id, Tensor activations) {
        return ExpertBatchRequest.newBuilder().setBatchId(id).setLayer(1).addTokenExpertCounts(1).addExperts(2)
                .addWeights(1f).setActivations(activations);
    }

    private static Tensor inlineRow() {
        return TensorCodec.encode(call(1, 7).activations(), 0, 1, hidden, DType.DTYPE_F32);
    }

    @Test
    void anArenaOfferedOverTcp_isRefused_andTheStreamWorksInTheMessages() throws Exception {
        int port = ctx.getBean(GrpcServerLifecycle.class).port();
        TensorArena arena = TensorArena.create(dir, 1, 4096);
        try (RawStream s = RawStream.open(Grpc.newChannelBuilderForAddress("127.0.0.1", port,
                InsecureChannelCredentials.create()).build(), arena.path().toString())) {
            assertThat(s.arenaAnswer()).isEqualTo("refused: only a caller on a peer-uid domain socket may share memory");
            assertThat(s.send(request(1, inlineRow()).build()).hasStatus()).isFalse();
        }
    }

    @Test
    void aFileThatIsNotAnArena_isRefused_andTheStreamWorksInTheMessages() throws Exception {
        Path notAnArena = Files.write(dir.resolve("moemesh-arena-fake.shm"), new byte[8192]);
        try (RawStream s = RawStream.open(InstanceEndpoint.unix(socket).channelBuilder(InsecureChannelCredentials.create())
                .build(), notAnArena.toString())) {
            assertThat(s.arenaAnswer()).startsWith("refused: ").endsWith("does not start with the arena header");
            ExpertBatchResponse ok = s.send(request(1, inlineRow()).build());
            assertThat(ok.hasStatus()).isFalse();
            assertThat(ok.getOutputs().getData().size()).isEqualTo(4 * hidden);
            // a region on a stream without an arena is that message's error only
            ExpertBatchResponse bad = s.send(request(2, inlineRow().toBuilder().clearData().setRegion(ArenaRegion
                    .newBuilder().setOffsetBytes(64).setLengthBytes(4L * hidden).setCapacityBytes(4096)).build()).build());
            assertThat(bad.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT.value());
            assertThat(bad.getStatus().getMessage()).contains("no shared-memory arena mapped");
        }
    }

    @Test
    void aRegionThatIsNotASlot_isInvalidArgument_forThatMessageOnly_andAGoodOneComesBackInItsSlot() throws Exception {
        TensorArena arena = TensorArena.create(dir, 2, 64 * 1024);
        try (RawStream s = RawStream.open(InstanceEndpoint.unix(socket).channelBuilder(InsecureChannelCredentials.create())
                .build(), arena.path().toString())) {
            assertThat(s.arenaAnswer()).isEqualTo(ExpertBatchWire.ARENA_MAPPED);
            float[] x = call(1, 7).activations();
            TensorArena.Region slot1 = arena.write(1, x, hidden, DType.DTYPE_F32);
            Tensor shape = Tensor.newBuilder().setDtype(DType.DTYPE_F32).addShape(1).addShape(hidden).build();
            for (ArenaRegion r : List.of(
                    ArenaRegion.newBuilder().setOffsetBytes(slot1.offset() + 4).setLengthBytes(slot1.length())
                            .setCapacityBytes(slot1.capacity()).build(),
                    ArenaRegion.newBuilder().setOffsetBytes(slot1.offset()).setLengthBytes(slot1.length() - 4)
                            .setCapacityBytes(slot1.capacity()).build(),
                    ArenaRegion.newBuilder().setOffsetBytes(slot1.offset()).setLengthBytes(slot1.length())
                            .setCapacityBytes(1L << 40).build())) {
                ExpertBatchResponse bad = s.send(request(3, shape.toBuilder().setRegion(r).build()).build());
                assertThat(bad.getStatus().getCode()).as("%s", r).isEqualTo(Status.Code.INVALID_ARGUMENT.value());
                assertThat(bad.getStatus().getMessage()).startsWith("activations: ");
            }
            ExpertBatchResponse good = s.send(request(4, shape.toBuilder().setRegion(ArenaRegion.newBuilder()
                    .setOffsetBytes(slot1.offset()).setLengthBytes(slot1.length()).setCapacityBytes(slot1.capacity()))
                    .build()).build());
            assertThat(good.hasStatus()).isFalse();
            assertThat(good.getOutputs().getData()).isEqualTo(ByteString.EMPTY);
            assertThat(good.getOutputs().getRegion().getOffsetBytes()).isEqualTo(slot1.offset());
            ExpertBatchResponse inline = s.send(request(5, inlineRow()).build());
            float[] expected = new float[hidden];
            TensorCodec.decode(inline.getOutputs(), "outputs", 1, hidden, expected, 0);
            TensorArena.Region out = new TensorArena.Region(good.getOutputs().getRegion().getOffsetBytes(),
                    good.getOutputs().getRegion().getLengthBytes(), good.getOutputs().getRegion().getCapacityBytes());
            assertThat(arena.read(out, DType.DTYPE_F32, hidden)).containsExactly(expected);
        }
    }
}
