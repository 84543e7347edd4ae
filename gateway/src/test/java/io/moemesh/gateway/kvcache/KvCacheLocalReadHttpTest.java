package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.gateway.support.Completions;
import io.moemesh.gateway.support.RealKvCacheService;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.service.grpc.InstanceEndpoint;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIf;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * {@code moemesh.gateway.kvcache.local-read=auto} (the default) against the real kvcache-service (its gRPC service
 * and tiers in this JVM) on a peer-uid domain socket, as {@code moemesh up} runs it: the service's DRAM holds one
 * block, so a prompt's written-back blocks are demoted to its SSD tier by the blocks written after them; once the
 * gateway's own cache lost them the prompt is restored with {@code Locate}, its 3 blocks read from the segment files
 * by the gateway itself, with the text of a full computation.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@EnabledIf("io.moemesh.service.grpc.InstanceEndpoint#domainSocketsAvailable")
class KvCacheLocalReadHttpTest {
    private static final String MODEL = TestModels.MIXTRAL;
    /** Short: a socket path has at most 107 bytes, more than a deep build directory may leave. */
    private static final Path DIR = tempDir();
    private static final RealKvCacheService KV = InstanceEndpoint.domainSocketsAvailable() ? service() : null;

    private static Path tempDir() {
        try {
            return Files.createTempDirectory(Path.of("/tmp"), "kvlocal");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static RealKvCacheService service() {
        var c = ModelConfigReader.read(TestModels.dir(MODEL));
        long block = 2L * c.numLayers() * c.numKvHeads() * 16 * c.headDim() * Float.BYTES;
        return new RealKvCacheService(TestModels.dir(MODEL), DIR.resolve("ssd"), 16, block, DIR.resolve("kv.sock"));
    }

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        KvCacheGatewayProperties.add(r, MODEL, 256, KV::unixEndpoint);
        r.add("moemesh.gateway.kvcache.fetch-timeout", () -> "5s");
    }

    @LocalServerPort
    int port;

    @LocalManagementPort
    int managementPort;

    @AfterAll
    static void stop() throws IOException {
        if (KV != null) {
            KV.close();
        }
        try (var files = Files.walk(DIR)) {
            files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }

    @Test
    void aPromptsSsdBlocks_areReadFromTheSegmentFilesByTheGateway_withTheSameText() throws Exception {
        Completions api = new Completions(MODEL, port, managementPort);
        int[] p = Completions.prompt(60, 11);
        Completions.Result first = api.complete(p, 12);
        assertThat(first.cached()).isZero();
        int full = (p.length + 11) / 16;
        await().atMost(Duration.ofSeconds(30))
                .until(() -> api.metric("moemesh_gateway_kvcache_writeback_blocks_total") >= full);
        // a 240-token prompt needs all 16 blocks of the local cache: every cached block is evicted (its own
        // write-backs then push the first prompt's blocks out of the service's one-block DRAM onto its SSD)
        api.complete(Completions.prompt(240, 3000), 2);
        long ssdHits = KV.ssdHits();

        Completions.Result again = api.complete(p, 12);

        assertThat(again.cached()).as("the 3 full blocks before the last token").isEqualTo(48);
        assertThat(again.text()).isEqualTo(first.text());
        assertThat(api.metric("moemesh_gateway_kvcache_local_read_blocks_total"))
                .as("the prompt's blocks on the service's SSD, read from its segment files").isEqualTo(3);
        assertThat(api.metric("moemesh_gateway_kvcache_local_read_failures_total")).isZero();
        assertThat(KV.ssdHits() - ssdHits).as("each located block is a hit of the SSD tier").isEqualTo(3);
    }
}
