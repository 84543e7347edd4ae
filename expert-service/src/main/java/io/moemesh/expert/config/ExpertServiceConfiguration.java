package io.moemesh.expert.config;

import io.grpc.BindableService;
import io.micrometer.core.instrument.MeterRegistry;
import io.moemesh.expert.assignment.Assignment;
import io.moemesh.expert.assignment.AssignmentManager;
import io.moemesh.expert.assignment.PlacerPolicy;
import io.moemesh.expert.assignment.Prefetcher;
import io.moemesh.expert.backend.ExpertBackend;
import io.moemesh.expert.backend.ExpertBackends;
import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.backend.KernelThreads;
import io.moemesh.expert.batch.BatchProcessor;
import io.moemesh.expert.batch.LoadTracker;
import io.moemesh.expert.grpc.ExpertBatchShutdown;
import io.moemesh.expert.grpc.ExpertGrpcService;
import io.moemesh.expert.metrics.ExpertMetrics;
import io.moemesh.expert.residency.ResidentSet;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.kernel.MatMul;
import io.moemesh.model.kernel.NativeCacheDirectory;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.settings.SettingRefusedException;
import io.moemesh.service.tls.MeshCredentials;
import io.moemesh.service.tls.PeerIdentityInterceptor;
import io.opentelemetry.api.OpenTelemetry;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.boot.context.event.ApplicationReadyEvent;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.event.EventListener;

/** Wires the domain objects and the gRPC server from {@link ExpertProperties}. */
@Configuration(proxyBeanMethods = false)
public final class ExpertServiceConfiguration {
    private static final Logger log = LoggerFactory.getLogger(ExpertServiceConfiguration.class);
    /** Prefetch hints beyond this many pending loads are ignored (hints are advice; never a backlog). */
    private static final int PREFETCH_QUEUE = 1024;

    @Bean(destroyMethod = "close")
    ExpertModel expertModel(ExpertProperties props) {
        if (props.nativeCacheDir() != null) {
            // Refused (the startup fails naming the property) when another user owns or could write it: OpenBLAS is
            // loaded from there (expert-service README, native-cache-dir).
            try {
                NativeCacheDirectory.useUnlessSet(props.nativeCacheDir(), "moemesh.expert.native-cache-dir");
            } catch (IllegalStateException e) {
                throw new SettingRefusedException("moemesh.expert.native-cache-dir", e.getMessage(), e);
            }
        }
        ExpertModel model = ExpertModel.open(props.modelDir());
        var c = model.config();
        log.info("model {} ({}, {} layers, {} experts{}, hidden {}, dtype {})", model.name(), c.architecture(),
                c.numLayers(), c.numExperts(), c.hasSharedExpert() ? " + shared" : "", c.hiddenSize(), c.dtype());
        return model;
    }

    @Bean
    ExpertBackend expertBackend(ExpertProperties props, ExpertModel model) {
        ExpertBackend backend = ExpertBackends.create(props.backend(), model,
                new KernelThreads(props.smallBatchKernelThreads(), props.largeBatchKernelThreads()));
        // Fail at startup, not at the first batch, when the JVM lacks the flag the CPU kernels need.
        if (backend.name().equals("cpu") && ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) {
            throw new SettingRefusedException("moemesh.expert.backend", "moemesh.expert.backend=cpu needs the Vector "
                    + "API: start the JVM with --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED");
        }
        log.info("{}: backend {}, budget {} bytes, device slot {}", props.instanceId(), backend.name(),
                props.memoryBudgetBytes(), props.deviceSlot());
        return backend;
    }

    /**
     * Cold start: with the cpu backend the kernel warm-up (seconds of C2 compilation, MatMul.warmUp) starts once
     * the service reports SERVING, on its own thread. The kernels give the same bits in every JIT tier, so only the
     * first batches' speed depends on it; started with the JVM, it took the CPU the start itself needed on two
     * cores (docs/performance.md "Cold start"). The noop backend needs none.
     */
    @EventListener(ApplicationReadyEvent.class)
    public void warmUpKernels(ApplicationReadyEvent ready) {
        if (ready.getApplicationContext().getBean(ExpertBackend.class).name().equals("cpu")) {
            MatMul.warmUpInBackground();
        }
    }

    @Bean
    ResidentSet residentSet(ExpertProperties props, ExpertBackend backend, ExpertModel model) {
        return new ResidentSet(props.memoryBudgetBytes(), backend::load, model.numLayers());
    }

    /** The startup assignment (placement file, or everything, or nothing) is loaded before gRPC serves. */
    @Bean
    AssignmentManager assignmentManager(ExpertProperties props, ExpertModel model, ResidentSet resident) {
        Assignment initial = Assignment.empty();
        if (props.assignAll()) {
            List<ExpertKey> all = new ArrayList<>();
            for (int l = 0; l < model.numLayers(); l++) {
                for (int e = 0; e < model.dispatchableExperts(); e++) {
                    all.add(new ExpertKey(l, e));
                }
            }
            initial = Assignment.of(0, all);
        }
        AssignmentManager manager = new AssignmentManager(model, props.instanceId(), resident, initial,
                props.drainGrace(), props.maxEpochJump(), System::nanoTime);
        if (props.placementFile() != null) {
            StartupPlacement.load(props.placementFile(), props.instanceId(), model, manager);
        } else {
            int loaded = resident.preload(initial.experts());
            log.info("{}: {} experts held at epoch 0, {} resident; waiting for LoadAssignment", props.instanceId(),
                    initial.experts().size(), loaded);
        }
        return manager;
    }

    @Bean
    LoadTracker loadTracker() {
        return new LoadTracker(System::nanoTime);
    }

    @Bean(destroyMethod = "close")
    BatchProcessor batchProcessor(ExpertProperties props, ExpertModel model, ExpertBackend backend,
                                  ResidentSet resident, AssignmentManager assignments, LoadTracker load) {
        return new BatchProcessor(model, backend, resident, assignments, load, System::nanoTime,
                props.effectiveComputeThreads(), props.maxQueuedBatches(), props.inlineMaxTokens());
    }

    /** One thread for prefetch loads (the drain grace has its own timer); loads must not compete with compute workers. */
    @Bean(destroyMethod = "shutdownNow")
    ThreadPoolExecutor prefetchLoader() {
        ThreadPoolExecutor pool = new ThreadPoolExecutor(1, 1, 0, TimeUnit.SECONDS,
                new ArrayBlockingQueue<>(PREFETCH_QUEUE), Thread.ofPlatform().name("expert-prefetch").daemon().factory());
        return pool;
    }

    @Bean(destroyMethod = "shutdownNow")
    ScheduledExecutorService drainTimer(AssignmentManager assignments) {
        ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().name("expert-drain").daemon().factory());
        // Dropping the previous epoch's experts a few hundred ms after the grace is fine: requests are judged by
        // the clock at arrival, not by when the drop runs.
        timer.scheduleWithFixedDelay(assignments::expireDrain, 200, 200, TimeUnit.MILLISECONDS);
        return timer;
    }

    @Bean
    Prefetcher prefetcher(ExpertModel model, AssignmentManager assignments, ResidentSet resident,
                          ThreadPoolExecutor prefetchLoader) {
        return new Prefetcher(model, assignments, resident, prefetchLoader);
    }

    @Bean
    ExpertMetrics expertMetrics(MeterRegistry registry, ExpertModel model, ResidentSet resident,
                                AssignmentManager assignments, LoadTracker load) {
        return new ExpertMetrics(registry, model.numLayers(), resident, assignments, load);
    }

    /** The gRPC port's credentials (moemesh.expert.tls.*), re-reading rotated files until shutdown. */
    @Bean(destroyMethod = "close")
    MeshCredentials meshCredentials(ExpertProperties props) {
        MeshCredentials credentials = MeshCredentials.load(props.tls(), "moemesh.expert.tls");
        if (credentials.isMtls()) {
            log.info("{}: gRPC with mutual TLS (certificate {}, CA {}); LoadAssignment only from {}", props.instanceId(),
                    props.tls().certChain(), props.tls().caBundle(), new TreeSet<>(props.placerIdentities()));
        } else {
            log.warn("{}: moemesh.expert.tls.mode=plaintext: gRPC without TLS, callers are not authenticated and any "
                    + "of them may LoadAssignment", props.instanceId());
        }
        return credentials;
    }

    @Bean
    ExpertGrpcService expertGrpcService(ExpertProperties props, ExpertModel model, AssignmentManager assignments,
                                        ResidentSet resident, Prefetcher prefetcher, BatchProcessor processor,
                                        LoadTracker load, ExpertMetrics metrics, ExpertBackend backend,
                                        OpenTelemetry otel, MeshCredentials credentials) {
        PlacerPolicy placers = credentials.isMtls() ? PlacerPolicy.of(props.placerIdentities())
                : PlacerPolicy.unauthenticated();
        return new ExpertGrpcService(new ExpertGrpcService.Identity(props.instanceId(), props.deviceSlot(), backend.name()),
                model, assignments, resident, prefetcher, processor, load, metrics, props.streamWindow(), otel, placers);
    }

    @Bean
    GrpcServerLifecycle grpcServer(ExpertProperties props, ExpertGrpcService service, MeshCredentials credentials) {
        GrpcServerLifecycle server = new GrpcServerLifecycle("expert-service " + props.instanceId(), props.grpcHost(), props.grpcPort(),
                credentials.server(), props.maxInboundMessageBytes(), props.shutdownGrace(),
                List.<BindableService>of(service), List.of(new PeerIdentityInterceptor()),
                // The stream handler only decodes and queues to the compute workers: no executor hop before that.
                Set.of(ExpertServiceGrpc.getExpertBatchMethod().getFullMethodName()));
        return props.grpcUnixSocket() == null ? server
                : server.alsoOnUnixSocket(props.grpcUnixSocket(), "moemesh.expert.grpc-unix-socket",
                        props.unixSocketSecurity(), "moemesh.expert.unix-socket-security");
    }

    /** At stop, the ExpertBatch streams every gateway keeps open are ended before the server waits for its calls. */
    @Bean
    ExpertBatchShutdown expertBatchShutdown(GrpcServerLifecycle grpcServer, ExpertGrpcService service) {
        return new ExpertBatchShutdown(grpcServer, service);
    }
}
