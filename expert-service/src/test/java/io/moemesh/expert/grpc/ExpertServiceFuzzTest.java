package io.moemesh.expert.grpc;

import static io.moemesh.service.testing.RawMessages.mutated;
import static io.moemesh.service.testing.RawMessages.raw;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.google.protobuf.ByteString;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.StreamObserver;
import io.moemesh.expert.ExpertServiceApplication;
import io.moemesh.expert.support.TestCertificates;
import io.moemesh.model.engine.LocalExperts;
import io.moemesh.model.engine.TestSteps;
import io.moemesh.model.safetensors.TensorStore;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.common.v1.Tensor;
import io.moemesh.proto.expert.v1.DescribeInstanceRequest;
import io.moemesh.proto.expert.v1.DescribeInstanceResponse;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.LoadAssignmentRequest;
import io.moemesh.proto.expert.v1.PrefetchRequest;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.grpc.TensorCodec;
import io.moemesh.service.testing.CountedProperties;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.AfterProperty;
import net.jqwik.api.lifecycle.BeforeContainer;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * Fuzzing a real expert-service (instance expert-0 of the placed qwen2moe-tiny test instance, Spring Boot on real
 * sockets, mutual TLS as the placer): ExpertBatch messages with random field values (layers and counts past 2^31, unknown
 * experts, non-finite weights, lying shapes, unknown dtypes, truncated payloads) and mutated bytes, each on a
 * stream of its own; Prefetch, DescribeInstance and LoadAssignment with random and mutated requests. No reply or
 * call may carry UNKNOWN, INTERNAL or DATA_LOSS, and after each property the instance still computes an expert it
 * holds exactly as the reference engine does. Cases per property: jqwik's default tries ({@code -Dfuzz.tries},
 * 1000 in the build).
 */
class ExpertServiceFuzzTest extends CountedProperties {
    private static final Set<Status.Code> SERVER_FAULTS = Set.of(Status.Code.UNKNOWN, Status.Code.INTERNAL,
            Status.Code.DATA_LOSS);
    private static final int H = PlacedInstanceTestBase.H;
    private static final int EXPERTS = PlacedInstanceTestBase.CONFIG.numExperts();
    private static ConfigurableApplicationContext app;
    private static ManagedChannel channel;
    private static TensorStore store;

    @BeforeContainer
    static void start() {
        app = new SpringApplicationBuilder(ExpertServiceApplication.class).run(
                "--moemesh.expert.model-dir=" + PlacedInstanceTestBase.MODEL,
                "--moemesh.expert.placement-file=" + PlacedInstanceTestBase.placementFile(),
                "--moemesh.expert.grpc-port=0", "--moemesh.expert.instance-id=expert-0",
                "--moemesh.expert.device-slot=1", "--moemesh.expert.memory-budget-bytes=200000",
                "--moemesh.expert.compute-threads=2", "--server.port=0", "--management.server.port=0",
                "--spring.main.banner-mode=off",
                "--moemesh.expert.tls.cert-chain=" + TestCertificates.mesh().certChain("expert-0"),
                "--moemesh.expert.tls.private-key=" + TestCertificates.mesh().privateKey("expert-0"),
                "--moemesh.expert.tls.ca-bundle=" + TestCertificates.mesh().caBundle());
        // As the placer: LoadAssignment, the privileged call, is fuzzed past its authorization check.
        channel = TestCertificates.channel(app.getBean(GrpcServerLifecycle.class).port(), "placer");
        store = TensorStore.open(PlacedInstanceTestBase.MODEL);
    }

    @AfterContainer
    static void stop() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        app.close();
        store.close();
    }


    private static final MethodDescriptor<byte[], byte[]> BATCH = raw(ExpertServiceGrpc.getExpertBatchMethod());
    private static final MethodDescriptor<byte[], byte[]> PREFETCH = raw(ExpertServiceGrpc.getPrefetchMethod());
    private static final MethodDescriptor<byte[], byte[]> DESCRIBE = raw(ExpertServiceGrpc.getDescribeInstanceMethod());
    private static final MethodDescriptor<byte[], byte[]> LOAD = raw(ExpertServiceGrpc.getLoadAssignmentMethod());

    private static void assertNoServerFault(Status s) {
        assertThat(s.getCode()).as(String.valueOf(s)).isNotIn(SERVER_FAULTS);
        assertThat(String.valueOf(s.getDescription())).doesNotContain("Exception");
    }

    private static void unary(MethodDescriptor<byte[], byte[]> method, byte[] request) {
        countCase();
        try {
            ClientCalls.blockingUnaryCall(channel, method, CallOptions.DEFAULT.withDeadlineAfter(30, TimeUnit.SECONDS),
                    request);
        } catch (StatusRuntimeException e) {
            assertNoServerFault(e.getStatus());
        }
    }

    @Property
    void expertBatch_eachMessageIsAnsweredOrTheStreamEnds_neverAsAServerFault(@ForAll("batchBytes") byte[] message)
            throws Exception {
        countCase();
        CompletableFuture<Object> first = new CompletableFuture<>();
        CompletableFuture<Status> end = new CompletableFuture<>();
        StreamObserver<byte[]> requests = ClientCalls.asyncBidiStreamingCall(channel.newCall(BATCH,
                CallOptions.DEFAULT.withDeadlineAfter(30, TimeUnit.SECONDS)), new StreamObserver<>() {
                    @Override
                    public void onNext(byte[] value) {
                        first.complete(value);
                    }

                    @Override
                    public void onError(Throwable t) {
                        first.complete(Status.fromThrowable(t));
                        end.complete(Status.fromThrowable(t));
                    }

                    @Override
                    public void onCompleted() {
                        end.complete(Status.OK);
                    }
                });
        requests.onNext(message);
        requests.onCompleted();
        Object answer = first.get(30, TimeUnit.SECONDS);
        if (answer instanceof byte[] reply) {
            ExpertBatchResponse r = ExpertBatchResponse.parseFrom(reply);
            assertNoServerFault(Status.fromCodeValue(r.getStatus().getCode()).withDescription(r.getStatus().getMessage()));
            assertThat(end.get(30, TimeUnit.SECONDS)).as("the stream completes after its one reply").isEqualTo(Status.OK);
        } else {
            Status s = (Status) answer;
            assertNoServerFault(s);
            assertThat(s.getCode()).as("a stream ends early only for a message it cannot read: " + s)
                    .isIn(Status.Code.INVALID_ARGUMENT, Status.Code.RESOURCE_EXHAUSTED);
        }
    }

    @Property
    void prefetch_neverAnswersAsAServerFault(@ForAll("prefetchBytes") byte[] request) {
        unary(PREFETCH, request);
    }

    @Property
    void describeInstance_neverAnswersAsAServerFault(@ForAll("noiseOrEmpty") byte[] request) {
        unary(DESCRIBE, request);
    }

    @Property
    void loadAssignment_neverAnswersAsAServerFault(@ForAll("loadBytes") byte[] request) {
        unary(LOAD, nextEpochWhenOdd(request));
    }

    /**
     * Epochs only go up, so after the first accepted assignment random epochs are mostly stale: a readable request
     * with an odd epoch is moved to the epoch after the served one, so assignments keep being loaded too.
     */
    private static byte[] nextEpochWhenOdd(byte[] request) {
        LoadAssignmentRequest r;
        try {
            r = LoadAssignmentRequest.parseFrom(request);
        } catch (com.google.protobuf.InvalidProtocolBufferException e) {
            return request;
        }
        if (r.getEpoch() % 2 == 0) {
            return request;
        }
        long served = ExpertServiceGrpc.newBlockingStub(channel).describeInstance(
                DescribeInstanceRequest.getDefaultInstance()).getEpoch();
        return r.toBuilder().setEpoch(served + 1).build().toByteArray();
    }



    /** An expert the instance holds now (assigning one when a fuzzed LoadAssignment left it none) is exact. */
    @AfterProperty
    void stillComputesTheReference() throws Exception {
        var stub = ExpertServiceGrpc.newBlockingStub(channel);
        DescribeInstanceResponse d = stub.describeInstance(DescribeInstanceRequest.getDefaultInstance());
        ExpertRef held;
        if (d.getAssignedExpertsCount() > 0) {
            held = d.getAssignedExperts(0);
        } else {
            held = ExpertRef.newBuilder().setLayer(0).setExpert(0).build();
            stub.loadAssignment(LoadAssignmentRequest.newBuilder().setInstanceId("expert-0").setEpoch(d.getEpoch() + 1)
                    .addExperts(held).build());
        }
        Random r = new Random(7);
        float[] x = new float[2 * H];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        ExpertBatchRequest req = ExpertBatchRequest.newBuilder().setBatchId(1).setLayer(held.getLayer())
                .setActivations(TensorCodec.encode(x, 0, 2, H)).addTokenExpertCounts(1).addTokenExpertCounts(1)
                .addExperts(held.getExpert()).addExperts(held.getExpert()).addWeights(0.75f).addWeights(1.5f).build();
        CompletableFuture<ExpertBatchResponse> reply = new CompletableFuture<>();
        StreamObserver<ExpertBatchRequest> s = ExpertServiceGrpc.newStub(channel).expertBatch(new StreamObserver<>() {
            @Override
            public void onNext(ExpertBatchResponse value) {
                reply.complete(value);
            }

            @Override
            public void onError(Throwable t) {
                reply.completeExceptionally(t);
            }

            @Override
            public void onCompleted() {
            }
        });
        s.onNext(req);
        s.onCompleted();
        ExpertBatchResponse got = reply.get(30, TimeUnit.SECONDS);
        assertThat(got.getStatus().getCode()).as(got.getStatus().getMessage()).isZero();
        float[] out = new float[2 * H];
        TensorCodec.decode(got.getOutputs(), "outputs", 2, H, out, 0);
        float[] expected = new float[2 * H];
        LocalExperts.fromStore(store, PlacedInstanceTestBase.CONFIG).run(TestSteps.rows(2), held.getLayer(), x,
                new int[] {held.getExpert(), held.getExpert()}, new float[] {0.75f, 1.5f}, 1, expected);
        for (int i = 0; i < expected.length; i++) {
            assertThat(out[i]).isCloseTo(expected[i], within(1e-5f + Math.abs(expected[i]) * 1e-5f));
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Generators
    // ---------------------------------------------------------------------------------------------------------

    private static Arbitrary<Integer> uint32(int validUpTo) {
        return Arbitraries.oneOf(Arbitraries.integers().between(0, validUpTo),
                Arbitraries.of(-1, Integer.MIN_VALUE, Integer.MAX_VALUE, validUpTo + 1, 1 << 16));
    }

    private static Arbitrary<Float> weights() {
        return Arbitraries.oneOf(Arbitraries.floats().between(-2, 2), Arbitraries.of(Float.NaN,
                Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.MAX_VALUE, -0f));
    }

    /** Activations: usually right for the counts, else a lying shape, another dtype, or a cut payload. */
    private static Arbitrary<Tensor> activations(int tokens) {
        Arbitrary<Tensor> right = Arbitraries.of(DType.DTYPE_F32, DType.DTYPE_BF16).map(dt -> {
            float[] x = new float[Math.max(tokens, 0) * H];
            Arrays.fill(x, 0.25f);
            return TensorCodec.encode(x, 0, Math.max(tokens, 0), H, dt);
        });
        Arbitrary<Tensor> shape = Combinators.combine(right, Arbitraries.longs().between(-3, 5).list().ofMaxSize(3),
                Arbitraries.of(0L, -1L, 1L << 31, 1L << 40, Long.MAX_VALUE)).as((t, dims, big) -> {
                    Tensor.Builder b = t.toBuilder().clearShape().addAllShape(dims);
                    return dims.isEmpty() ? b.addShape(big).addShape(H).build() : b.build();
                });
        Arbitrary<Tensor> dtype = Combinators.combine(right, Arbitraries.integers().between(-1, 12))
                .as((t, v) -> t.toBuilder().setDtypeValue(v).build());
        Arbitrary<Tensor> cut = Combinators.combine(right, Arbitraries.integers().between(0, 9))
                .as((t, n) -> t.toBuilder().setData(t.getData().substring(0, Math.max(0, t.getData().size() - n))
                        .concat(ByteString.copyFrom(new byte[n % 3]))).build());
        return Arbitraries.frequencyOf(Tuple.of(5, right), Tuple.of(2, shape), Tuple.of(1, dtype), Tuple.of(1, cut));
    }

    private static Arbitrary<ExpertBatchRequest> batches() {
        Arbitrary<Integer> tokens = Arbitraries.integers().between(0, 3);
        return tokens.flatMap(n -> Combinators.combine(uint32(4), uint32(3).list().ofSize(n), uint32(EXPERTS + 1)
                        .list().ofMaxSize(6), weights().list().ofMaxSize(6), activations(n),
                        Arbitraries.of(0L, PlacedInstanceTestBase.EPOCH, PlacedInstanceTestBase.EPOCH - 1, -1L),
                        Arbitraries.integers().between(-1, 10), Arbitraries.strings().ofMaxLength(12))
                .as((layer, counts, experts, weights, x, epoch, outDtype, trace) -> ExpertBatchRequest.newBuilder()
                        .setBatchId(n).setPlacementEpoch(epoch).setLayer(layer).addAllTokenExpertCounts(counts)
                        .addAllExperts(experts).addAllWeights(weights).setActivations(x).setOutputDtypeValue(outDtype)
                        .putTraceContext("traceparent", wellFormed(trace)).build()));
    }

    /** Protobuf refuses to serialise a lone surrogate; invalid UTF-8 comes from the byte mutations. */
    private static String wellFormed(String s) {
        return s.codePoints().filter(cp -> cp < 0xD800 || cp > 0xDFFF)
                .collect(StringBuilder::new, StringBuilder::appendCodePoint, StringBuilder::append).toString();
    }


    private static Arbitrary<List<ExpertRef>> refs() {
        return Combinators.combine(uint32(5), uint32(EXPERTS + 1))
                .as((l, e) -> ExpertRef.newBuilder().setLayer(l).setExpert(e).build()).list().ofMaxSize(6);
    }

    @Provide
    Arbitrary<byte[]> batchBytes() {
        return mutated(batches().map(ExpertBatchRequest::toByteArray));
    }

    @Provide
    Arbitrary<byte[]> prefetchBytes() {
        return mutated(Combinators.combine(Arbitraries.of(0L, PlacedInstanceTestBase.EPOCH, 99L, -1L), refs())
                .as((epoch, refs) -> PrefetchRequest.newBuilder().setPlacementEpoch(epoch).addAllExperts(refs).build()
                        .toByteArray()));
    }

    @Provide
    Arbitrary<byte[]> noiseOrEmpty() {
        return mutated(Arbitraries.just(DescribeInstanceRequest.getDefaultInstance().toByteArray()));
    }

    /**
     * Assignments for this instance or others, at epochs from 0 up (never near 2^64, so a later epoch always
     * exists for the reference check), with unknown, duplicate or out-of-range experts.
     */
    @Provide
    Arbitrary<byte[]> loadBytes() {
        return mutated(Combinators.combine(Arbitraries.of("expert-0", "expert-0", "expert-1", "", "é"),
                        Arbitraries.longs().between(0, 1_000_000), refs())
                .as((id, epoch, refs) -> LoadAssignmentRequest.newBuilder().setInstanceId(id).setEpoch(epoch)
                        .addAllExperts(refs).build().toByteArray()));
    }
}
