package io.moemesh.expert.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.expert.assignment.Assignment;
import io.moemesh.expert.assignment.AssignmentManager;
import io.moemesh.expert.assignment.PlacerPolicy;
import io.moemesh.expert.assignment.Prefetcher;
import io.moemesh.expert.backend.BatchInput;
import io.moemesh.expert.backend.ExpertBackend;
import io.moemesh.expert.backend.ExpertLookup;
import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.backend.LoadedExpert;
import io.moemesh.expert.backend.NoOpExpertBackend;
import io.moemesh.expert.batch.BatchProcessor;
import io.moemesh.expert.batch.LoadTracker;
import io.moemesh.expert.metrics.ExpertMetrics;
import io.moemesh.expert.residency.ResidentSet;
import io.moemesh.expert.support.BatchClient;
import io.moemesh.expert.support.Requests;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.expert.v1.DescribeInstanceRequest;
import io.moemesh.proto.expert.v1.DescribeInstanceResponse;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.LoadAssignmentRequest;
import io.moemesh.service.grpc.StatusMapping;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A JVM Error of one call that is not the VM's (an InternalError: what MemorySegment.load and a mapped read throw
 * on a weights file truncated under them) is answered like any failure, INTERNAL through StatusMapping and counted,
 * over a real gRPC server of the service's objects (plaintext loopback, calls on the transport thread as the
 * service runs ExpertBatch): not UNKNOWN, not the whole stream.
 */
class JvmErrorStatusTest {
    private static final ExpertKey BROKEN = new ExpertKey(0, 0);
    private static ExpertModel model;

    private final SimpleMeterRegistry registry = new SimpleMeterRegistry();
    private BatchProcessor processor;
    private Server server;
    private ManagedChannel channel;

    @BeforeAll
    static void open() {
        model = ExpertModel.open(TestModels.dir(TestModels.MIXTRAL)); // 4 layers × 8 experts, hidden 64
    }

    @AfterAll
    static void close() {
        model.close();
    }

    @AfterEach
    void stop() throws InterruptedException {
        channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
        server.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
        processor.close();
    }

    /** The noop backend; its load of {@link #BROKEN} fails with {@code loadError}, each compute runs {@code compute}. */
    private record Faulty(Error loadError, Runnable compute) implements ExpertBackend {
        private static final NoOpExpertBackend NOOP = new NoOpExpertBackend(64);

        @Override
        public String name() {
            return "faulty";
        }

        @Override
        public LoadedExpert load(ExpertKey key) {
            if (loadError != null && key.equals(BROKEN)) {
                throw loadError;
            }
            return NOOP.load(key);
        }

        @Override
        public void compute(BatchInput batch, ExpertLookup experts, float[] out) {
            compute.run();
            NOOP.compute(batch, experts, out);
        }

        @Override
        public int inlineMaxTokens() {
            return NOOP.inlineMaxTokens();
        }
    }

    private ResidentSet serve(ExpertBackend backend, Assignment initial) throws Exception {
        ResidentSet resident = new ResidentSet(Long.MAX_VALUE, backend::load, model.config().numLayers());
        AssignmentManager assignments = new AssignmentManager(model, "expert-0", resident, initial,
                Duration.ofSeconds(10), System::nanoTime);
        resident.preload(initial.experts());
        LoadTracker load = new LoadTracker(System::nanoTime);
        processor = new BatchProcessor(model, backend, resident, assignments, load, System::nanoTime, 1, 8, 8);
        ExpertGrpcService service = new ExpertGrpcService(new ExpertGrpcService.Identity("expert-0", 0, backend.name()),
                model, assignments, resident, new Prefetcher(model, assignments, resident, Runnable::run), processor,
                load, new ExpertMetrics(registry, model.config().numLayers(), resident, assignments, load), 64,
                PlacerPolicy.unauthenticated());
        server = NettyServerBuilder.forAddress(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))
                .directExecutor().addService(service).build().start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.getPort()).usePlaintext().build();
        return resident;
    }

    private double errors(String code) {
        Counter c = registry.find("moemesh.expert.errors").tag("code", code).counter();
        return c == null ? 0 : c.count();
    }

    @Test
    void loadAssignment_whoseLoadFailsWithAnInternalError_isInternal_counted_andLeavesNothingResident()
            throws Exception {
        ResidentSet resident = serve(new Faulty(new InternalError("a fault occurred in an unsafe memory access"),
                () -> { }), Assignment.empty());
        var stub = ExpertServiceGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS);
        LoadAssignmentRequest req = LoadAssignmentRequest.newBuilder().setInstanceId("expert-0").setEpoch(1)
                .addExperts(ExpertRef.newBuilder().setLayer(0).setExpert(1))
                .addExperts(ExpertRef.newBuilder().setLayer(BROKEN.layer()).setExpert(BROKEN.expert())).build();

        assertThatThrownBy(() -> stub.loadAssignment(req)).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INTERNAL);
            assertThat(e.getStatus().getDescription()).isEqualTo(StatusMapping.INTERNAL_DESCRIPTION);
        });

        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(errors("INTERNAL")).isEqualTo(1));
        DescribeInstanceResponse d = ExpertServiceGrpc.newBlockingStub(channel)
                .withDeadlineAfter(30, TimeUnit.SECONDS).describeInstance(DescribeInstanceRequest.getDefaultInstance());
        assertThat(d.getEpoch()).isZero();
        assertThat(d.getPreparedEpoch()).isZero();
        assertThat(d.getResidentExpertsList()).as("the failed epoch's expert loaded before the fault").isEmpty();
        assertThat(resident.residentExperts()).isEmpty();
    }

    @Test
    void expertBatch_computedInlineFailingWithAnInternalError_isInternalForThatBatch_andTheStreamGoesOn()
            throws Exception {
        AtomicBoolean faultOnce = new AtomicBoolean(true);
        serve(new Faulty(null, () -> {
            if (faultOnce.getAndSet(false)) {
                throw new InternalError("a fault occurred in an unsafe memory access");
            }
        }), Assignment.of(0, IntStream.range(0, 4 * 8).mapToObj(i -> new ExpertKey(i / 8, i % 8)).toList()));
        int hidden = model.hiddenSize();
        try (BatchClient stream = new BatchClient(channel)) {
            ExpertBatchResponse failed = stream.call(Requests.single(0, 1, 0, hidden).build());
            assertThat(Status.fromCodeValue(failed.getStatus().getCode()).getCode()).isEqualTo(Status.Code.INTERNAL);
            assertThat(failed.getStatus().getMessage()).isEqualTo(StatusMapping.INTERNAL_DESCRIPTION);
            assertThat(failed.hasOutputs()).isFalse();

            ExpertBatchResponse next = stream.call(Requests.single(0, 1, 0, hidden).build());
            assertThat(next.getStatus().getCode()).as(next.getStatus().getMessage()).isZero();
            assertThat(next.getOutputs().getShapeList()).containsExactly(1L, (long) hidden);
            assertThat(stream.isEnded()).isFalse();
        }
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(errors("INTERNAL")).isEqualTo(1));
    }
}
