package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.gateway.support.TestCertificates;
import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.grpc.KvCacheGrpcService;
import io.moemesh.kvcache.metrics.KvCacheMetrics;
import io.moemesh.kvcache.policy.LruPolicy;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.tier.SsdConfig;
import io.moemesh.kvcache.tier.SsdTier;
import io.moemesh.kvcache.tier.TieredKvStore;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.ModelFingerprint;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.tls.PeerIdentityInterceptor;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Attend offload against the real kvcache-service's gRPC service and tiers (in this JVM, mutual TLS) whose
 * admission policy declines every block it is asked about, as the default conversation policy declines the last
 * block of each chain a Lookup announced once it has learned that last blocks are rarely reused. The offload pins
 * its blocks right after storing them, so its Puts say {@code pin_next} and are not asked about; before, a declined
 * block was forgotten by the write-back, the Pin was never sent, and the long sequence stayed local for good.
 */
class AttendOffloadAdmissionTest {
    private static final KvPayload SHAPE = WriteBackTest.LAYOUT;
    private static final ModelFingerprint MODEL = WriteBackTest.MODEL;
    @TempDir
    Path ssdDir;
    private TieredKvStore store;
    private ServedModels models;
    private GrpcServerLifecycle server;
    private KvCacheClient client;
    private WriteBack writeBack;
    private AttendOffload offload;

    @BeforeEach
    void start() {
        KvLayout layout = new KvLayout(SHAPE.layers(), SHAPE.kvHeads(), SHAPE.headDim(), SHAPE.blockTokens());
        SsdTier ssd = SsdTier.open(SsdConfig.defaults(ssdDir, 1 << 20), layout, MODEL, new LruPolicy());
        store = new TieredKvStore(layout, 1 << 20, new LruPolicy(), ssd, (key, hint) -> false, System::nanoTime);
        models = new ServedModels(List.of(new ServedModel("declining", MODEL, 4, layout, store, ssd)));
        server = new GrpcServerLifecycle("test-kvcache", "127.0.0.1", 0,
                TestCertificates.credentials("expert-2").server(), 64 << 20, Duration.ofMillis(200),
                List.of(new KvCacheGrpcService(models, new KvCacheMetrics(new SimpleMeterRegistry(), models))),
                List.of(new PeerIdentityInterceptor()));
        server.start();
        String endpoint = "127.0.0.1:" + server.port();
        client = new KvCacheClient(NettyChannelBuilder.forTarget(endpoint,
                TestCertificates.credentials("gateway").channel()).build(), endpoint, MODEL, SHAPE, null);
        writeBack = new WriteBack(client, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        offload = new AttendOffload(client, writeBack, 1, 0, Duration.ofSeconds(10), Duration.ofSeconds(30), 64);
    }

    @AfterEach
    void stop() {
        offload.close();
        writeBack.close(Duration.ZERO);
        client.close();
        server.stop();
        models.close();
    }

    @Test
    void anOffloadsBlocks_areStoredAndPinned_whereTheServicesAdmissionPolicyDeclinesOrdinaryWriteBacks()
            throws Exception {
        List<BlockContents> seq = WriteBackTest.chain(3, 1);
        // The sequence's blocks were written back as the cache releases them: declined, and forgotten.
        seq.forEach(writeBack::accept);
        await().atMost(Duration.ofSeconds(30)).until(() -> writeBack.declinedBlocks() == 3);

        boolean offloaded = offload.offload(7, seq).get(60, TimeUnit.SECONDS);

        assertThat(offloaded).isTrue();
        for (BlockContents b : seq) {
            assertThat(store.isPinned(BlockKey.of(b.hash().bytes()))).as("block %d", b.chainPosition()).isTrue();
        }
        assertThat(offload.offloadedBlocks()).isEqualTo(3);
        assertThat(writeBack.declinedBlocks()).isEqualTo(3);
        assertThat(store.stats().declined()).as("only the ordinary write-backs were asked").isEqualTo(3);
    }
}
