package io.moemesh.kvcache.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.InsecureServerCredentials;
import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.support.KvTestMesh;
import io.moemesh.kvcache.tier.FsyncPolicy;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.tls.TlsSettings;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The background compaction on the tiers the service opens, as plain objects. */
class KvCacheBackgroundTest {
    @TempDir
    Path ssdDir;

    private KvCacheProperties props() {
        return new KvCacheProperties(List.of(KvTestMesh.MODEL_DIR), 16, "127.0.0.1", 0, 1L << 20,
                ssdDir, 1L << 20, 65536, FsyncPolicy.NEVER, Duration.ofSeconds(1), 1L << 20, 1.0,
                Duration.ofMillis(100), false, false, "lru", 16 << 20, Duration.ZERO, TlsSettings.plaintext(), null, null,
                32, "keep");
    }

    @Test
    void compaction_runsEveryPeriod_andReclaimsTheDeadSpaceOfSealedSegments() {
        KvCacheProperties props = props();
        try (ServedModels models = KvCacheServiceConfiguration.open(props)) {
            ServedModel m = models.all().getFirst();
            Random r = new Random(1);
            for (int i = 0; i < 12; i++) {
                byte[] key = new byte[32];
                r.nextBytes(key);
                float[] kv = new float[m.layout().floatsPerBlock()];
                m.ssd().put(KvBlock.of(BlockKey.of(key), m.layout(), kv));
                if (i % 2 == 0) {
                    m.ssd().remove(BlockKey.of(key));
                }
            }
            long dead = m.ssd().deadBytes();
            assertThat(dead).isPositive();
            KvCacheBackground background = new KvCacheBackground(props, models);
            background.start();
            try {
                await().atMost(Duration.ofSeconds(30)).until(() -> m.ssd().deadBytes() < dead);
            } finally {
                background.stop();
            }
            assertThat(background.isRunning()).isFalse();
            assertThat(m.ssd().blockCount()).isEqualTo(6);
        }
    }

    @Test
    void compaction_stopsAfterTheGrpcServer_soTheServerDrainsFirst_asTheServiceDocuments() {
        KvCacheProperties props = props();
        GrpcServerLifecycle server = new GrpcServerLifecycle("kvcache-service", "127.0.0.1", 0,
                InsecureServerCredentials.create(), 1 << 20, Duration.ZERO, List.of(), List.of());
        try (ServedModels models = KvCacheServiceConfiguration.open(props)) {
            // Spring stops the higher phase first (and starts it last).
            assertThat(new KvCacheBackground(props, models).getPhase()).isLessThan(server.getPhase());
        }
    }
}
