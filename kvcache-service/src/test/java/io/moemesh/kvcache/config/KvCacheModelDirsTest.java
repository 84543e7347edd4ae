package io.moemesh.kvcache.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.kvcache.support.KvTestMesh;
import io.moemesh.kvcache.tier.FsyncPolicy;
import io.moemesh.service.tls.TlsSettings;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** moemesh.kvcache.model-dirs as the service opens its models, as plain objects. */
class KvCacheModelDirsTest {
    @TempDir
    Path ssdDir;

    @TempDir
    Path modelsDir;

    private KvCacheProperties props(List<Path> modelDirs) {
        return props(modelDirs, 16 << 20);
    }

    private KvCacheProperties props(List<Path> modelDirs, int maxInboundMessageBytes) {
        return new KvCacheProperties(modelDirs, 16, "127.0.0.1", 0, 1L << 20,
                ssdDir, 1L << 20, 65536, FsyncPolicy.NEVER, Duration.ofSeconds(1), 1L << 20, 1.0,
                Duration.ofMillis(100), false, false, "lru", maxInboundMessageBytes, Duration.ZERO,
                TlsSettings.plaintext(), null, null, 32, "keep");
    }

    /**
     * A limit above the Put floor (1 MiB + 64 KiB) but below a model's largest Attend request (Mixtral-8x7B: 256 query
     * rows of 32 heads × 128 in f32 are 4 MiB) is refused at startup naming the property, the model and the bytes it
     * needs, before any tier opens. Before, the service started and every Attend offload of a long sequence of that
     * model failed with RESOURCE_EXHAUSTED.
     */
    @Test
    void aMessageLimit_belowAModelsLargestAttendRequest_isRefusedNamingThePropertyTheModelAndTheBytes()
            throws Exception {
        Path mixtral = Files.createDirectories(modelsDir.resolve("Mixtral-8x7B"));
        Files.writeString(mixtral.resolve("config.json"), """
                {"model_type": "mixtral", "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
                 "num_hidden_layers": 32, "intermediate_size": 14336, "num_local_experts": 8,
                 "num_experts_per_tok": 2, "vocab_size": 32000, "max_position_embeddings": 32768}""");
        long needed = 256L * 32 * 128 * 4 + 256 * 5 + 2048 * 34 + 1024;

        assertThatThrownBy(() -> KvCacheServiceConfiguration.open(props(List.of(mixtral), 2 << 20)).close())
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("moemesh.kvcache.max-inbound-message-bytes "
                        + "(MOEMESH_KVCACHE_MAX_INBOUND_MESSAGE_BYTES): 2097152 bytes cannot hold the largest Attend "
                        + "request of model Mixtral-8x7B, " + needed + " bytes")
                .hasMessageEndingWith("set it to at least " + needed + " (5 MiB)");
        try (Stream<Path> files = Files.list(ssdDir)) {
            assertThat(files).as("no tier directory was created").isEmpty();
        }
    }

    @Test
    void aMessageLimit_holdingEveryModelsLargestAttendRequest_isAccepted() {
        KvCacheProperties exact = props(List.of(KvTestMesh.MODEL_DIR), KvCacheProperties.MIN_INBOUND_MESSAGE_BYTES);
        try (var models = KvCacheServiceConfiguration.open(exact)) {
            assertThat(models.all()).hasSize(1);
        }
    }

    /**
     * The same model twice would share one SSD directory and fail on its lock, blaming ssd-dir: it is refused naming
     * model-dirs, before any tier is opened.
     */
    @Test
    void theSameModelListedTwice_isRefusedNamingModelDirs_beforeAnyTierOpens() throws Exception {
        Path again = KvTestMesh.MODEL_DIR.resolve(".");
        assertThatThrownBy(() -> KvCacheServiceConfiguration.open(props(List.of(KvTestMesh.MODEL_DIR, again))).close())
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("moemesh.kvcache.model-dirs (MOEMESH_KVCACHE_MODEL_DIRS): ")
                .hasMessageContaining(KvTestMesh.FINGERPRINT.hex())
                .hasMessageContaining("configure the model once")
                .hasMessageNotContaining("ssd-dir");
        try (Stream<Path> files = Files.list(ssdDir)) {
            assertThat(files).as("no tier directory was created").isEmpty();
        }
    }
}
