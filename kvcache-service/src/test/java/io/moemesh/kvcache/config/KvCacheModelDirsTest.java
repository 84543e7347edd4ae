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

    private KvCacheProperties props(List<Path> modelDirs) {
        return new KvCacheProperties(modelDirs, 16, "127.0.0.1", 0, 1L << 20,
                ssdDir, 1L << 20, 65536, FsyncPolicy.NEVER, Duration.ofSeconds(1), 1L << 20, 1.0,
                Duration.ofMillis(100), false, false, "lru", 16 << 20, Duration.ZERO, TlsSettings.plaintext(), null, null,
                32);
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
