package io.moemesh.gateway.support;

import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.grpc.KvCacheGrpcService;
import io.moemesh.kvcache.metrics.KvCacheMetrics;
import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.tier.PayloadEncoding;
import io.moemesh.kvcache.tier.SsdConfig;
import io.moemesh.kvcache.tier.SsdTier;
import io.moemesh.kvcache.tier.TieredKvStore;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.ModelFingerprint;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.tls.PeerIdentityInterceptor;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The real kvcache-service's gRPC service ({@link KvCacheGrpcService}) over its real tiers (16 MiB of DRAM over an
 * SSD tier in a temporary directory) for one model, on a real socket with mutual TLS (the mesh certificate
 * "expert-2" of {@link TestCertificates}), in this JVM. Knobs for the failure tests, applied by an interceptor in
 * front of the service: {@link #failAttend} and {@link #failPin} (the call ends UNAVAILABLE; {@link #onFailedAttend}
 * runs first), {@link #attendDelay}
 * (Attend answers later, on a timer: no thread sleeps).
 */
public final class RealKvCacheService implements AutoCloseable {
    public volatile boolean failAttend;
    public volatile boolean failPin;
    public volatile Duration attendDelay = Duration.ZERO;
    /** Run (on the gRPC thread) whenever {@link #failAttend} fails an Attend, before the call is closed. */
    public volatile Runnable onFailedAttend = () -> { };
    public final AtomicInteger attends = new AtomicInteger();
    public final AtomicInteger pins = new AtomicInteger();
    public final AtomicInteger unpins = new AtomicInteger();
    private final ServedModel model;
    private final ServedModels models;
    private final GrpcServerLifecycle server;
    private final Path unixSocket;
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().daemon().name("test-kvcache-delay").factory());

    public RealKvCacheService(Path modelDir, Path ssdDir, int blockTokens) {
        this(modelDir, ssdDir, blockTokens, 16L << 20, null);
    }

    /**
     * @param dramBytes  the DRAM tier's budget (bytes); what it cannot hold is demoted to the SSD tier
     * @param unixSocket a peer-uid domain socket to listen on too, as the service does under {@code moemesh up}
     *                   (calls on it have the identity {@code local-owner}); null for TCP only
     */
    public RealKvCacheService(Path modelDir, Path ssdDir, int blockTokens, long dramBytes, Path unixSocket) {
        this(modelDir, ssdDir, blockTokens, dramBytes, unixSocket, PayloadEncoding.FLOAT32);
    }

    /** @param ssdEncoding the SSD tier's payload encoding ({@code moemesh.kvcache.int8}: INT8) */
    public RealKvCacheService(Path modelDir, Path ssdDir, int blockTokens, long dramBytes, Path unixSocket,
                              PayloadEncoding ssdEncoding) {
        ModelConfig c = ModelConfigReader.read(modelDir);
        ModelFingerprint fp = ModelFingerprint.of(modelDir);
        KvLayout layout = new KvLayout(c.numLayers(), c.numKvHeads(), c.headDim(), blockTokens);
        SsdTier ssd = SsdTier.open(SsdConfig.defaults(ssdDir, 256L << 20).withEncoding(ssdEncoding), layout, fp,
                new LruPolicy());
        TieredKvStore store = new TieredKvStore(layout, dramBytes, new LruPolicy(), ssd, AdmissionPolicy.ADMIT_ALL,
                System::nanoTime);
        model = new ServedModel(modelDir.getFileName().toString(), fp, c.numHeads(), layout, store, ssd);
        models = new ServedModels(List.of(model));
        KvCacheGrpcService service = new KvCacheGrpcService(models,
                new KvCacheMetrics(new SimpleMeterRegistry(), models));
        server = new GrpcServerLifecycle("test-kvcache", "127.0.0.1", 0,
                TestCertificates.credentials("expert-2").server(), 64 << 20, Duration.ofMillis(200),
                List.of(service), List.of(new Faults(), new PeerIdentityInterceptor()));
        if (unixSocket != null) {
            server.alsoOnUnixSocket(unixSocket, "test.kvcache-unix-socket");
        }
        this.unixSocket = unixSocket;
        server.start();
    }

    /** {@code unix:///path} of the domain socket given at construction. */
    public String unixEndpoint() {
        return "unix://" + unixSocket;
    }

    /** The SSD tier's hits so far (a located block counts as one). */
    public long ssdHits() {
        return model.ssd().stats().hits();
    }

    public String endpoint() {
        return "127.0.0.1:" + server.port();
    }

    /** Whether the block is stored and pinned in the service now. */
    public boolean isPinned(BlockHash hash) {
        return model.store().isPinned(BlockKey.of(hash.bytes()));
    }

    @Override
    public void close() {
        server.stop();
        timer.shutdownNow();
        models.close();
    }

    private final class Faults implements ServerInterceptor {
        @Override
        public <Q, A> ServerCall.Listener<Q> interceptCall(ServerCall<Q, A> call, Metadata headers,
                                                           ServerCallHandler<Q, A> next) {
            String method = call.getMethodDescriptor().getBareMethodName();
            switch (method) {
                case "Attend" -> attends.incrementAndGet();
                case "Pin" -> pins.incrementAndGet();
                case "Unpin" -> unpins.incrementAndGet();
                default -> { }
            }
            if ("Attend".equals(method) && failAttend || "Pin".equals(method) && failPin) {
                if ("Attend".equals(method)) {
                    onFailedAttend.run();
                }
                call.close(Status.UNAVAILABLE.withDescription(method + " failure injected by the test"), new Metadata());
                return new ServerCall.Listener<>() { };
            }
            Duration delay = attendDelay;
            ServerCall.Listener<Q> listener = next.startCall(call, headers);
            if (!"Attend".equals(method) || delay.isZero()) {
                return listener;
            }
            return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(listener) {
                @Override
                public void onHalfClose() {
                    timer.schedule(() -> {
                        try {
                            super.onHalfClose();
                        } catch (RuntimeException cancelled) {
                            // the caller gave up meanwhile: nobody to answer
                        }
                    }, delay.toMillis(), TimeUnit.MILLISECONDS);
                }
            };
        }
    }
}
