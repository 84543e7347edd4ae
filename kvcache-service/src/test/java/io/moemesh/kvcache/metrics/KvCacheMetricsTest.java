package io.moemesh.kvcache.metrics;

import static io.moemesh.kvcache.tier.TestBlocks.BLOCK_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.LAYOUT;
import static io.moemesh.kvcache.tier.TestBlocks.MODEL;
import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.tier.SsdConfig;
import io.moemesh.kvcache.tier.SsdTier;
import io.moemesh.kvcache.tier.TieredKvStore;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What the scrape says of the meters, as plain objects (one tiny model, no server). */
class KvCacheMetricsTest {
    @TempDir
    Path dir;

    /** The tiers count whole records on SSD (header included), as kvcache.proto and docs/metrics.md say. */
    @Test
    void tierReadAndWrittenBytes_helpSaysWholeRecordsOnSsd_notPayloadBytes() {
        SsdTier ssd = SsdTier.open(SsdConfig.defaults(dir, 1 << 20), LAYOUT, MODEL, new LruPolicy());
        TieredKvStore store = new TieredKvStore(LAYOUT, 4L * BLOCK_BYTES, new LruPolicy(), ssd,
                AdmissionPolicy.ADMIT_ALL, System::nanoTime);
        try (ServedModels models = new ServedModels(List.of(new ServedModel("tiny", MODEL, 4, LAYOUT, store, ssd)))) {
            PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
            new KvCacheMetrics(registry, models);

            List<String> help = registry.scrape().lines().filter(l -> l.startsWith("# HELP moemesh_kvcache_tier_read_"
                    + "bytes_total ") || l.startsWith("# HELP moemesh_kvcache_tier_written_bytes_total ")).toList();

            assertThat(help).hasSize(2).allSatisfy(l -> assertThat(l).doesNotContain("Payload bytes")
                    .contains("whole record"));
        }
    }
}
