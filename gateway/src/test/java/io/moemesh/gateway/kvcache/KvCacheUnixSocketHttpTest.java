package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.gateway.support.Completions;
import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.model.golden.TestModels;
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
 * {@code moemesh.gateway.kvcache.endpoint=unix:///path}: the gateway reaches the kvcache-service over its Unix domain
 * socket (a real epoll socket, mutual TLS, the service's TCP port unused by the gateway), through the public HTTP
 * API: a prompt's blocks are written back and, once the local cache lost them, fetched back with the same text.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@EnabledIf("io.moemesh.service.grpc.InstanceEndpoint#domainSocketsAvailable")
class KvCacheUnixSocketHttpTest {
    private static final String MODEL = TestModels.MIXTRAL;
    /** Short: a socket path has at most 107 bytes, more than a deep build directory may leave. */
    private static final Path DIR = tempDir();
    private static final FakeKvCacheService KV = InstanceEndpoint.domainSocketsAvailable()
            ? new FakeKvCacheService(16, DIR.resolve("kv.sock")) : null;

    private static Path tempDir() {
        try {
            return Files.createTempDirectory(Path.of("/tmp"), "kvuds");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        KvCacheGatewayProperties.add(r, MODEL, 256, KV::unixEndpoint);
        r.add("moemesh.gateway.kvcache.fetch-timeout", () -> "3s");
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
        Files.deleteIfExists(DIR.resolve("kv.sock"));
        Files.deleteIfExists(DIR);
    }

    @Test
    void aPromptServedBefore_isFetchedOverTheDomainSocket_afterTheLocalCacheLostIt_withTheSameText()
            throws Exception {
        Completions api = new Completions(MODEL, port, managementPort);
        int[] p = Completions.prompt(60, 7);
        Completions.Result first = api.complete(p, 12);
        assertThat(first.cached()).isZero();
        int full = (p.length + 11) / 16;
        await().atMost(Duration.ofSeconds(30)).until(() -> KV.stored.get() >= full);
        // a 240-token prompt needs all 16 blocks of the local cache: every cached block is evicted
        api.complete(Completions.prompt(240, 2000), 2);

        Completions.Result again = api.complete(p, 12);

        assertThat(again.cached()).as("the 3 full blocks before the last token").isEqualTo(48);
        assertThat(again.text()).isEqualTo(first.text());
        assertThat(KV.gets.get()).isPositive();
        assertThat(api.metric("moemesh_gateway_kvcache_fetched_blocks_total")).isEqualTo(3);
    }
}
