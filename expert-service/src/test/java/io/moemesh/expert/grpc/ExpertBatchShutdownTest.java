package io.moemesh.expert.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.InsecureServerCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.expert.ExpertServiceApplication;
import io.moemesh.expert.assignment.Assignment;
import io.moemesh.expert.assignment.AssignmentManager;
import io.moemesh.expert.assignment.PlacerPolicy;
import io.moemesh.expert.assignment.Prefetcher;
import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.batch.BatchProcessor;
import io.moemesh.expert.batch.LoadTracker;
import io.moemesh.expert.metrics.ExpertMetrics;
import io.moemesh.expert.residency.ResidentSet;
import io.moemesh.expert.support.BatchClient;
import io.moemesh.expert.support.Requests;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * The expert-service's stop with ExpertBatch streams open (every gateway keeps one on each instance, idle or not):
 * health NOT_SERVING first, the batches a stream took are answered, then each stream ends with UNAVAILABLE, so the
 * server's graceful stop does not wait its whole shutdown grace. Real sockets, plaintext loopback.
 */
class ExpertBatchShutdownTest {
    private static final Duration GRACE = Duration.ofSeconds(30);
    private static ExpertModel model;

    private BatchProcessor processor;
    private GrpcServerLifecycle server;
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
    void tearDown() throws InterruptedException {
        if (channel != null) {
            channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
        }
        if (server != null && server.isRunning()) {
            server.stop();
        }
        if (processor != null) {
            processor.close();
        }
    }

    private static void assertEndedForShutdown(Throwable end, String instanceId) {
        assertThat(end).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
            assertThat(e.getStatus().getDescription()).isEqualTo("expert-service " + instanceId + " shutting down");
        });
    }

    @Test
    void stop_answersTheBatchesAStreamTook_thenEndsEveryStreamUnavailable_longBeforeTheGrace() throws Exception {
        HeldBackend backend = new HeldBackend(new CountDownLatch(1), new CountDownLatch(1));
        ResidentSet resident = new ResidentSet(Long.MAX_VALUE, backend::load, model.config().numLayers());
        Assignment all = Assignment.of(0, IntStream.range(0, 4 * 8).mapToObj(i -> new ExpertKey(i / 8, i % 8)).toList());
        AssignmentManager assignments = new AssignmentManager(model, "expert-0", resident, all, Duration.ofSeconds(10),
                System::nanoTime);
        resident.preload(all.experts());
        LoadTracker load = new LoadTracker(System::nanoTime);
        processor = new BatchProcessor(model, backend, resident, assignments, load, System::nanoTime, 1, 8);
        ExpertGrpcService service = new ExpertGrpcService(new ExpertGrpcService.Identity("expert-0", 0, "held"), model,
                assignments, resident, new Prefetcher(model, assignments, resident, Runnable::run), processor, load,
                new ExpertMetrics(new SimpleMeterRegistry(), model.config().numLayers(), resident, assignments, load), 64,
                PlacerPolicy.unauthenticated());
        server = new GrpcServerLifecycle("expert-0", "127.0.0.1", 0, InsecureServerCredentials.create(), 4 << 20, GRACE,
                List.of(service), List.of(), Set.of(ExpertServiceGrpc.getExpertBatchMethod().getFullMethodName()));
        ExpertBatchShutdown shutdown = new ExpertBatchShutdown(server, service);
        server.start();
        shutdown.start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        int hidden = model.hiddenSize();

        BatchClient idle = new BatchClient(channel);
        BatchClient busy = new BatchClient(channel);
        CompletableFuture<ExpertBatchResponse> before = busy.send(Requests.single(1, 2, 0, hidden).build());
        assertThat(backend.computing().await(30, TimeUnit.SECONDS)).as("the batch sent before the stop computes")
                .isTrue();
        await().atMost(Duration.ofSeconds(10)).until(() -> service.batchStreams().size() == 2);

        shutdown.stop();
        assertThat(HealthGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                .check(HealthCheckRequest.getDefaultInstance()).getStatus())
                .as("gateways hear NOT_SERVING, and route no new batch here").isEqualTo(ServingStatus.NOT_SERVING);
        assertEndedForShutdown(idle.awaitEnd(Duration.ofSeconds(10)), "expert-0");
        // Taken while the stream waits for its first answer: answered too, not dropped.
        CompletableFuture<ExpertBatchResponse> during = busy.send(Requests.single(2, 3, 0, hidden).build());
        await().atMost(Duration.ofSeconds(10)).until(() -> load.inFlightBatches() == 2);
        BatchClient late = new BatchClient(channel);
        assertEndedForShutdown(late.awaitEnd(Duration.ofSeconds(10)), "expert-0");
        assertThat(busy.isEnded()).as("a stream with a batch in flight stays open for its answer").isFalse();

        long started = System.nanoTime();
        CompletableFuture<Void> stopped = CompletableFuture.runAsync(server::stop);
        backend.release().countDown();
        for (CompletableFuture<ExpertBatchResponse> reply : List.of(before, during)) {
            ExpertBatchResponse r = reply.get(10, TimeUnit.SECONDS);
            assertThat(r.getStatus().getCode()).as(r.getStatus().getMessage()).isZero();
            assertThat(r.getOutputs().getShapeList()).containsExactly(1L, (long) hidden);
        }
        assertEndedForShutdown(busy.awaitEnd(Duration.ofSeconds(10)), "expert-0");
        stopped.get(GRACE.toSeconds() / 2, TimeUnit.SECONDS);
        assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(GRACE.dividedBy(2));
        assertThat(service.batchStreams().size()).isZero();
        assertThat(load.openStreams()).isZero();
    }

    @Test
    void contextClose_withAnIdleExpertBatchStreamOpen_returnsLongBeforeTheGrace_andEndsItUnavailable()
            throws Exception {
        ConfigurableApplicationContext ctx = new SpringApplicationBuilder(ExpertServiceApplication.class).run(
                "--moemesh.expert.model-dir=" + TestModels.dir(TestModels.MIXTRAL), "--moemesh.expert.grpc-port=0",
                "--server.port=0", "--management.server.port=0", "--moemesh.expert.tls.mode=plaintext",
                "--moemesh.expert.backend=noop", "--moemesh.expert.assign-all=true",
                "--moemesh.expert.instance-id=expert-7", "--moemesh.expert.shutdown-grace=" + GRACE.toSeconds() + "s");
        try {
            int port = ctx.getBean(GrpcServerLifecycle.class).port();
            channel = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
            BatchClient stream = new BatchClient(channel);
            int hidden = model.hiddenSize();
            ExpertBatchResponse answered = stream.call(Requests.single(0, 1, 0, hidden).build());
            assertThat(answered.getStatus().getCode()).as(answered.getStatus().getMessage()).isZero();
            assertThat(stream.isEnded()).isFalse();

            long started = System.nanoTime();
            ctx.close();
            assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(GRACE.dividedBy(2));
            assertEndedForShutdown(stream.awaitEnd(Duration.ofSeconds(10)), "expert-7");
        } finally {
            ctx.close();
        }
    }
}
