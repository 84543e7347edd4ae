package io.moemesh.gateway.config;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.gateway.GatewayApplication;
import io.moemesh.model.golden.TestModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.SpringApplication;

/**
 * Attend offload over a KV pool in which no sequence would ever offload (the default threshold of 4096 positions
 * against a pool of 128): the gateway refuses to start, naming the properties and the pool, instead of lifting the
 * cache's length bound for offloads that never happen (a long prompt would fill the pool and hold it for ever). And
 * with a block size so small that a sequence at the model's context would name more remote blocks in one Attend than
 * the kvcache-service takes: refused naming kv-block-tokens, instead of failing every Attend of such a sequence.
 */
class KvCacheAttendPoolStartupTest {
    @TempDir
    Path tmp;

    /** The tiny Mixtral with a context of {@code positions} (its weights linked, not copied). */
    private Path mixtralWithContext(int positions) throws Exception {
        Path from = TestModels.dir(TestModels.MIXTRAL);
        Path dir = Files.createDirectory(tmp.resolve("mixtral-long"));
        try (Stream<Path> files = Files.list(from)) {
            for (Path f : files.toList()) {
                Files.createSymbolicLink(dir.resolve(f.getFileName()), f.toAbsolutePath());
            }
        }
        Path config = dir.resolve("config.json");
        String json = Files.readString(from.resolve("config.json"))
                .replaceFirst("\"max_position_embeddings\": *[0-9]+", "\"max_position_embeddings\": " + positions);
        Files.delete(config);
        Files.writeString(config, json);
        return dir;
    }

    @Test
    void attendWithBlocksTooSmallForOneAttendAtTheModelsContext_isRefusedAtStartup_namingKvBlockTokens()
            throws Exception {
        Path model = mixtralWithContext(70_000);
        assertThatThrownBy(() -> SpringApplication.run(GatewayApplication.class,
                "--moemesh.gateway.model-dir=" + model, "--moemesh.gateway.grpc-port=0",
                "--server.port=0", "--management.server.port=0", "--moemesh.gateway.kv-cache-tokens=128",
                "--moemesh.gateway.kv-block-tokens=1", "--moemesh.gateway.tls.mode=plaintext",
                "--moemesh.gateway.kvcache.endpoint=127.0.0.1:1", "--moemesh.gateway.kvcache.attend.enabled=true",
                "--moemesh.gateway.kvcache.attend.threshold-tokens=64",
                "--moemesh.gateway.kvcache.attend.local-blocks=8"))
                .rootCause().isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("moemesh.gateway.kv-block-tokens 1 ")
                .hasMessageContaining("context of 70000 positions")
                .hasMessageContaining("69990 remote blocks")
                .hasMessageContaining("65536 block hashes")
                .hasMessageContaining("at least 2");
    }

    @Test
    void attendThatCanNeverOffloadInThePool_isRefusedAtStartup_namingThePropertiesAndThePool() {
        assertThatThrownBy(() -> SpringApplication.run(GatewayApplication.class,
                "--moemesh.gateway.model-dir=" + TestModels.dir(TestModels.MIXTRAL), "--moemesh.gateway.grpc-port=0",
                "--server.port=0", "--management.server.port=0", "--moemesh.gateway.kv-cache-tokens=128",
                "--moemesh.gateway.tls.mode=plaintext", "--moemesh.gateway.kvcache.endpoint=127.0.0.1:1",
                "--moemesh.gateway.kvcache.attend.enabled=true"))
                .rootCause().isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("moemesh.gateway.kvcache.attend.threshold-tokens 4096")
                .hasMessageContaining("moemesh.gateway.kvcache.attend.local-blocks 32")
                .hasMessageContaining("8 blocks of 16 tokens (128 positions");
    }
}
