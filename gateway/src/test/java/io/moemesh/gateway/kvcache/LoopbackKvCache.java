package io.moemesh.gateway.kvcache;

import io.grpc.ServerInterceptor;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.gateway.support.TestCertificates;
import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.grpc.KvCacheGrpcService;
import io.moemesh.kvcache.metrics.KvCacheMetrics;
import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.tier.SsdConfig;
import io.moemesh.kvcache.tier.SsdTier;
import io.moemesh.kvcache.tier.TieredKvStore;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.tls.PeerIdentityInterceptor;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * The real kvcache-service in this JVM for the Attend offload tests: its gRPC service over 1 MiB of DRAM above an SSD
 * tier in {@code ssdDir}, on a loopback port with mutual TLS, serving {@link WriteBackTest#MODEL} in
 * {@link WriteBackTest#LAYOUT}, and the gateway's {@link KvCacheClient} of it. A test's own server interceptors run
 * before the peer-identity one, as the service orders them.
 */
final class LoopbackKvCache implements AutoCloseable {
    final TieredKvStore store;
    final KvCacheClient client;
    private final ServedModels models;
    private final GrpcServerLifecycle server;

    LoopbackKvCache(Path ssdDir, String modelName, AdmissionPolicy admission, List<ServerInterceptor> interceptors) {
        KvPayload shape = WriteBackTest.LAYOUT;
        KvLayout layout = new KvLayout(shape.layers(), shape.kvHeads(), shape.headDim(), shape.blockTokens());
        SsdTier ssd = SsdTier.open(SsdConfig.defaults(ssdDir, 1 << 20), layout, WriteBackTest.MODEL, new LruPolicy());
        store = new TieredKvStore(layout, 1 << 20, new LruPolicy(), ssd, admission, System::nanoTime);
        models = new ServedModels(List.of(new ServedModel(modelName, WriteBackTest.MODEL, 4, layout, store, ssd)));
        List<ServerInterceptor> all = new ArrayList<>(interceptors);
        all.add(new PeerIdentityInterceptor());
        server = new GrpcServerLifecycle("test-kvcache", "127.0.0.1", 0,
                TestCertificates.credentials("expert-2").server(), 64 << 20, Duration.ofMillis(200),
                List.of(new KvCacheGrpcService(models, new KvCacheMetrics(new SimpleMeterRegistry(), models))), all);
        server.start();
        String endpoint = "127.0.0.1:" + server.port();
        client = new KvCacheClient(NettyChannelBuilder.forTarget(endpoint,
                TestCertificates.credentials("gateway").channel()).build(), endpoint, WriteBackTest.MODEL, shape, null);
    }

    /** A write-back to the service as the gateway configures one for the tests (64 blocks queued). */
    WriteBack writeBack() {
        return new WriteBack(client, 64, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
    }

    boolean pinned(BlockContents b) {
        return store.isPinned(BlockKey.of(b.hash().bytes()));
    }

    boolean stored(BlockContents b) {
        return store.contains(BlockKey.of(b.hash().bytes()));
    }

    @Override
    public void close() {
        client.close();
        server.stop();
        models.close();
    }
}
