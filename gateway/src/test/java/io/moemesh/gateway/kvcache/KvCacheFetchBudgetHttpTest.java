package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.gateway.support.Completions;
import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.kv.PrefixCachingKvCache;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * The fetch budget of {@link RemotePrefixes}: eight prompts whose 3 full blocks each only the service holds arrive
 * while a long request fills the 16-block local cache. Fetching all of them at once would hold 24 decoded blocks
 * for sequences that cannot be admitted yet; the blocks of started, not yet imported fetches never pass the room the
 * pool has (so never its 16 blocks), and every prompt still gets the text it gets alone.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class KvCacheFetchBudgetHttpTest {
    private static final String MODEL = TestModels.MIXTRAL;
    private static final FakeKvCacheService KV = new FakeKvCacheService(16);
    private static final int PROMPTS = 8;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        KvCacheGatewayProperties.add(r, MODEL, 256, KV::endpoint);
        r.add("moemesh.gateway.kvcache.fetch-timeout", () -> "10s");
    }

    @LocalServerPort
    int port;

    @LocalManagementPort
    int managementPort;

    @Autowired
    RemotePrefixes remote;

    @Autowired
    PrefixCachingKvCache cache;

    @Autowired
    KvCacheClient client;

    @AfterAll
    static void stop() {
        KV.close();
    }

    @Test
    void fetchedButNotAdmittedPrefixes_stayWithinTheLocalPoolsRoom_andEveryPromptKeepsItsText() throws Exception {
        Completions api = new Completions(MODEL, port, managementPort);
        List<int[]> prompts = new ArrayList<>();
        List<String> refs = new ArrayList<>();
        for (int i = 0; i < PROMPTS; i++) {
            int[] p = Completions.prompt(60, 100 + i);
            int before = KV.stored.get();
            prompts.add(p);
            refs.add(api.complete(p, 4).text());
            // 60 + 3 computed positions: 3 full blocks written back at release
            await().atMost(Duration.ofSeconds(30)).until(() -> KV.stored.get() - before >= 3);
        }
        api.complete(Completions.prompt(240, 200), 2); // evicts every cached block: the prompts are only remote
        long fetches = remote.fetches();

        try (ExecutorService clients = Executors.newFixedThreadPool(PROMPTS + 1)) {
            // 200 + 55 positions: all 16 blocks once it runs, so the prompts wait while their fetches could pile up
            CompletableFuture<Completions.Result> filler = CompletableFuture.supplyAsync(
                    () -> call(api, Completions.prompt(200, 201), 55), clients);
            await().atMost(Duration.ofSeconds(30)).until(() -> cache.usedBlocks() >= 13 || filler.isDone());
            List<CompletableFuture<Completions.Result>> results = new ArrayList<>();
            for (int[] p : prompts) {
                results.add(CompletableFuture.supplyAsync(() -> call(api, p, 4), clients));
            }
            for (int i = 0; i < PROMPTS; i++) {
                assertThat(results.get(i).get().text()).as("prompt %d", i).isEqualTo(refs.get(i));
            }
            filler.get();
        }
        assertThat(remote.fetches()).as("fetches started").isGreaterThan(fetches);
        assertThat(remote.peakReservedFetchBytes()).as("peak bytes of fetched, not yet admitted prefixes")
                .isPositive()
                .isLessThanOrEqualTo((long) cache.totalBlocks() * client.payload().bytes());
        await().atMost(Duration.ofSeconds(10)).until(() -> remote.reservedFetchBytes() == 0);
    }

    private static Completions.Result call(Completions api, int[] prompt, int maxTokens) {
        try {
            return api.complete(prompt, maxTokens);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }
}
