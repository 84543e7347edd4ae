package io.moemesh.expert.grpc;

import io.grpc.BindableService;
import io.grpc.InsecureServerCredentials;
import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.expert.assignment.Assignment;
import io.moemesh.expert.assignment.AssignmentManager;
import io.moemesh.expert.assignment.PlacerPolicy;
import io.moemesh.expert.assignment.Prefetcher;
import io.moemesh.expert.backend.ExpertBackend;
import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.batch.BatchProcessor;
import io.moemesh.expert.batch.LoadTracker;
import io.moemesh.expert.metrics.ExpertMetrics;
import io.moemesh.expert.residency.ResidentSet;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.tls.PeerIdentityInterceptor;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * The service's own objects (no Spring) on the gRPC server the service runs (GrpcServerLifecycle, as
 * ExpertServiceConfiguration builds it, but plaintext on loopback: RequestParsingGuard, ExpertBatch callbacks on the
 * transport thread), its metrics in a registry of their own; assigned {@code initial} at start, nothing preloaded.
 */
final class ServedInstance implements AutoCloseable {
    final SimpleMeterRegistry registry = new SimpleMeterRegistry();
    final ResidentSet resident;
    final ExpertGrpcService service;
    final ManagedChannel channel;
    private final BatchProcessor processor;
    private final GrpcServerLifecycle server;

    ServedInstance(ExpertModel model, ExpertBackend backend, Assignment initial) {
        resident = new ResidentSet(Long.MAX_VALUE, backend::load, model.numLayers());
        AssignmentManager assignments = new AssignmentManager(model, "expert-0", resident, initial,
                Duration.ofSeconds(10), System::nanoTime);
        LoadTracker load = new LoadTracker(System::nanoTime);
        processor = new BatchProcessor(model, backend, resident, assignments, load, System::nanoTime, 1, 8, 8);
        service = new ExpertGrpcService(new ExpertGrpcService.Identity("expert-0", 0, backend.name()), model,
                assignments, resident, new Prefetcher(model, assignments, resident, Runnable::run), processor, load,
                new ExpertMetrics(registry, model.numLayers(), resident, assignments, load), 64,
                PlacerPolicy.unauthenticated());
        server = new GrpcServerLifecycle("expert-service expert-0", "127.0.0.1", 0, InsecureServerCredentials.create(),
                4 << 20, Duration.ZERO, List.<BindableService>of(service), List.of(new PeerIdentityInterceptor()),
                Set.of(ExpertServiceGrpc.getExpertBatchMethod().getFullMethodName()));
        server.start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
    }

    /** moemesh_expert_errors_total{code}. */
    double errors(String code) {
        Counter c = registry.find("moemesh.expert.errors").tag("code", code).counter();
        return c == null ? 0 : c.count();
    }

    @Override
    public void close() throws InterruptedException {
        channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
        server.stop();
        processor.close();
    }
}
