package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.gateway.support.Completions;
import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.model.golden.TestModels;
import java.time.Duration;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * The kvcache-service as the gateway's second KV tier, through the public HTTP API (experts in-process, a 16-block
 * local cache): a prompt's finished blocks are written back, and once the local cache lost them the same prompt
 * fetches them from the service at admission ({@code cached_tokens} counts them) with the text of a full
 * computation; with the service down, slower than {@code fetch-timeout}, or returning another block's bytes, the
 * request is recomputed and still gives that text. Each test uses its own prompt; the service goes down last.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class KvCacheTierHttpTest {
    private static final String MODEL = TestModels.MIXTRAL;
    private static final FakeKvCacheService KV = new FakeKvCacheService(16);
    private static long fillers = 1000;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        KvCacheGatewayProperties.add(r, MODEL, 256, KV::endpoint);
        r.add("moemesh.gateway.kvcache.fetch-timeout", () -> "3s");
    }

    @LocalServerPort
    int port;

    @LocalManagementPort
    int managementPort;

    private Completions api;

    @BeforeEach
    void api() {
        api = new Completions(MODEL, port, managementPort);
    }

    @AfterEach
    void serviceBehavesAgain() {
        KV.delay = Duration.ZERO;
        KV.corrupt = false;
    }

    @AfterAll
    static void stop() {
        KV.close();
    }

    /** Serves the prompt, then waits until its finished blocks are in the service. */
    private Completions.Result serveAndWriteBack(int[] prompt) throws Exception {
        int before = KV.stored.get();
        Completions.Result r = api.complete(prompt, 12);
        assertThat(r.cached()).isZero();
        // prompt + 11 computed generated positions: every full block of them is written back at release
        int full = (prompt.length + 11) / 16;
        await().atMost(Duration.ofSeconds(30)).until(() -> KV.stored.get() - before >= full);
        return r;
    }

    /** A 240-token prompt that needs all 16 blocks of the local cache: every cached block is evicted. */
    private void evictTheLocalCache() throws Exception {
        api.complete(Completions.prompt(240, fillers++), 2);
    }

    @Test
    @Order(1)
    void aPromptServedBefore_isFetchedFromTheService_afterTheLocalCacheLostIt_withTheSameText() throws Exception {
        int[] p = Completions.prompt(60, 1);
        Completions.Result first = serveAndWriteBack(p);
        evictTheLocalCache();
        double fetched = api.metric("moemesh_gateway_kvcache_fetched_blocks_total");

        Completions.Result again = api.complete(p, 12);
        assertThat(again.cached()).as("the 3 full blocks before the last token").isEqualTo(48);
        assertThat(again.text()).isEqualTo(first.text());
        assertThat(api.metric("moemesh_gateway_kvcache_fetched_blocks_total") - fetched).isEqualTo(3);
        assertThat(api.metric("moemesh_gateway_kvcache_writeback_blocks_total")).isPositive();

        // Its blocks are local now: nothing to fetch, so the service's policy is told of it by an announcement.
        double announced = api.metric("moemesh_gateway_kvcache_announcements_total");
        api.complete(p, 2);
        assertThat(api.metric("moemesh_gateway_kvcache_announcements_total") - announced).isEqualTo(1);
        assertThat(api.metric("moemesh_gateway_kvcache_announcements_dropped_total")).isZero();
    }

    @Test
    @Order(2)
    void aServiceSlowerThanTheFetchTimeout_isNotWaitedFor_theRequestIsRecomputed() throws Exception {
        int[] p = Completions.prompt(60, 2);
        Completions.Result first = serveAndWriteBack(p);
        evictTheLocalCache();
        double failures = api.metric("moemesh_gateway_kvcache_fetch_failures_total");
        KV.delay = Duration.ofSeconds(8);

        Completions.Result again = api.complete(p, 12);
        assertThat(again.cached()).isZero();
        assertThat(again.text()).isEqualTo(first.text());
        assertThat(api.metric("moemesh_gateway_kvcache_fetch_failures_total") - failures).isEqualTo(1);
    }

    @Test
    @Order(3)
    void aBlockWithAnotherBlocksBytes_failsItsChecksum_andIsRecomputed() throws Exception {
        int[] p = Completions.prompt(60, 3);
        Completions.Result first = serveAndWriteBack(p);
        evictTheLocalCache();
        double bad = api.metric("moemesh_gateway_kvcache_bad_blocks_total");
        KV.corrupt = true;

        Completions.Result again = api.complete(p, 12);
        assertThat(again.cached()).isZero();
        assertThat(again.text()).isEqualTo(first.text());
        assertThat(api.metric("moemesh_gateway_kvcache_bad_blocks_total") - bad).isEqualTo(1);
    }

    @Test
    @Order(4)
    void aServiceThatIsDown_isRecomputedAround_andWriteBacksFailCounted() throws Exception {
        int[] p = Completions.prompt(60, 4);
        Completions.Result first = serveAndWriteBack(p);
        evictTheLocalCache();
        double failures = api.metric("moemesh_gateway_kvcache_fetch_failures_total");
        KV.stop();

        Completions.Result again = api.complete(p, 12);
        assertThat(again.cached()).isZero();
        assertThat(again.text()).isEqualTo(first.text());
        assertThat(api.metric("moemesh_gateway_kvcache_fetch_failures_total") - failures).isEqualTo(1);
        // the blocks this request and the filler left are offered for write-back, and their Put fails
        evictTheLocalCache();
        await().atMost(Duration.ofSeconds(30))
                .until(() -> api.metric("moemesh_gateway_kvcache_writeback_failed_blocks_total") > 0);
    }
}
