package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.gateway.support.Completions;
import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.model.golden.TestModels;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * Preemption with {@code moemesh.gateway.kvcache.preemption=swap}: two requests that cannot both finish in the
 * 16-block local cache run at once; the newest is preempted and swapped out (its blocks written to the service
 * first), and resumes from what the local cache kept and the service holds. Both give the text each gives alone.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class KvCacheSwapHttpTest {
    private static final String MODEL = TestModels.MIXTRAL;
    private static final FakeKvCacheService KV = new FakeKvCacheService(16);

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.step-token-budget", () -> "64");
        KvCacheGatewayProperties.add(r, MODEL, 256, KV::endpoint);
        r.add("moemesh.gateway.kvcache.preemption", () -> "swap");
        r.add("moemesh.gateway.kvcache.fetch-timeout", () -> "10s");
    }

    @LocalServerPort
    int port;

    @LocalManagementPort
    int managementPort;

    @AfterAll
    static void stop() {
        KV.close();
    }

    @Test
    void aPreemptedSequence_isSwappedOutAndRestored_withTheTextItGetsAlone() throws Exception {
        Completions api = new Completions(MODEL, port, managementPort);
        // 100 + 100 positions = 13 blocks each: both cannot run to the end in 16 blocks, either can alone.
        int[] a = Completions.prompt(100, 21);
        int[] b = Completions.prompt(100, 22);
        String refA = api.complete(a, 100).text();
        String refB = api.complete(b, 100).text();
        // Each round: a third request fills all 16 local blocks, so a's and b's prompts are left only in the service;
        // both are looked up there at admission, and the gate holds each Lookup until the other arrives, so they
        // are admitted together and run side by side (26 blocks > 16): the newest is preempted and swapped out.
        // Which one and when depends on the steps' timing, so a round without a preemption is repeated (at most
        // 5); the restore of a swapped-out sequence is pinned down deterministically in the model's
        // RemoteTierGenerationTest. Every round, both texts must be the ones each gets alone.
        double swaps = api.metric("moemesh_gateway_kvcache_swap_outs_total");
        for (int round = 0; round < 5 && api.metric("moemesh_gateway_kvcache_swap_outs_total") == swaps; round++) {
            api.complete(Completions.prompt(155, 23 + round), 100);
            KV.lookupGate = new CyclicBarrier(2);
            try (ExecutorService clients = Executors.newFixedThreadPool(2)) {
                CompletableFuture<Completions.Result> ra = CompletableFuture.supplyAsync(() -> call(api, a), clients);
                CompletableFuture<Completions.Result> rb = CompletableFuture.supplyAsync(() -> call(api, b), clients);
                assertThat(ra.get().text()).isEqualTo(refA);
                assertThat(rb.get().text()).isEqualTo(refB);
            } finally {
                KV.lookupGate = null;
            }
        }
        assertThat(api.metric("moemesh_gateway_kvcache_swap_outs_total") - swaps).as("swap-outs").isPositive();
    }

    private static Completions.Result call(Completions api, int[] prompt) {
        try {
            return api.complete(prompt, 100);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }
}
