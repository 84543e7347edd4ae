package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.gateway.scheduling.EngineLoop;
import io.moemesh.gateway.support.Completions;
import io.moemesh.gateway.support.RealKvCacheService;
import io.moemesh.gateway.support.ReferenceText;
import io.moemesh.model.MoeModel;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.PrefixCachingKvCache;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Long contexts over the real kvcache-service's {@code Attend} (its gRPC service and tiers in this JVM, over mutual
 * TLS), through the public HTTP API: with {@code attend.threshold-tokens} 48 and {@code local-blocks} 2, a 60-token
 * prompt generating 250 tokens has its old blocks stored, pinned and freed from the gateway's pool while it runs,
 * gets the reference engine's text, and its pins are released when it ends; an Attend that fails or misses
 * {@code attend.timeout} fails the request with 503 and a message naming the service, and only that request (one
 * batched with it gets its text); a service that cannot pin leaves the sequence local (same text, no Attend).
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class KvCacheAttendHttpTest {
    private static final String MODEL = TestModels.MIXTRAL;
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newHttpClient();
    private static final RealKvCacheService KV;

    static {
        try {
            KV = new RealKvCacheService(TestModels.dir(MODEL), Files.createTempDirectory(Files.createDirectories(Path.of("target")), "kvcache-attend"), 16);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static MoeModel model;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        KvCacheGatewayProperties.add(r, MODEL, 512, KV::endpoint);
        r.add("moemesh.gateway.kvcache.attend.enabled", () -> "true");
        r.add("moemesh.gateway.kvcache.attend.threshold-tokens", () -> "48");
        r.add("moemesh.gateway.kvcache.attend.local-blocks", () -> "2");
        r.add("moemesh.gateway.kvcache.attend.timeout", () -> "1s");
    }

    @LocalServerPort
    int port;

    @LocalManagementPort
    int managementPort;

    @Autowired
    PrefixCachingKvCache cache;

    @Autowired
    EngineLoop loop;

    private Completions api;

    @BeforeAll
    static void open() {
        model = MoeModel.open(TestModels.dir(MODEL));
    }

    @AfterAll
    static void stop() {
        model.close();
        KV.close();
    }

    @BeforeEach
    void api() {
        api = new Completions(MODEL, port, managementPort);
    }

    @AfterEach
    void serviceBehavesAgain() {
        KV.failAttend = false;
        KV.failPin = false;
        KV.attendDelay = Duration.ZERO;
        KV.onFailedAttend = () -> { };
    }

    private CompletableFuture<HttpResponse<String>> complete(int[] prompt, int maxTokens) {
        String body = JSON.writeValueAsString(Map.of("model", MODEL, "prompt", prompt, "max_tokens", maxTokens,
                "temperature", 0, "ignore_eos", true));
        return HTTP.sendAsync(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v1/completions"))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void aLongGeneration_attendsOverItsOffloadedBlocks_withTheReferenceText_pinnedOnlyWhileItRuns() throws Exception {
        int[] prompt = Completions.prompt(60, 101);
        List<BlockHash> chain = cache.prefixChain(model.withBos(prompt), "default", 3);
        double calls = api.metric("moemesh_gateway_kvcache_attend_calls_total");

        CompletableFuture<HttpResponse<String>> running = complete(prompt, 250);
        // While it runs: its first blocks are pinned in the service and the pool holds only its recent blocks
        // (2 full ones, the one being filled, and at most the next offload's), of up to 20 a local run needs.
        await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(5))
                .until(() -> KV.isPinned(chain.get(0)) && cache.remoteBlocks() >= 4 && cache.usedBlocks() <= 5);
        HttpResponse<String> r = running.get();

        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        assertThat(JSON.readTree(r.body()).at("/choices/0/text").stringValue())
                .isEqualTo(ReferenceText.greedy(model, prompt, 250));
        assertThat(api.metric("moemesh_gateway_kvcache_attend_calls_total") - calls).isPositive();
        assertThat(api.metric("moemesh_gateway_kvcache_attend_offloaded_blocks_total")).isPositive();
        await().atMost(Duration.ofSeconds(10)).until(() -> chain.stream().noneMatch(KV::isPinned)
                && api.metric("moemesh_gateway_kvcache_attend_pinned_sequences") == 0);
    }

    @Test
    void anAttendThatFails_failsTheRequest_with503_sayingWhatFailed_withoutTheEndpointOrOtherSequences()
            throws Exception {
        KV.failAttend = true;
        double failures = api.metric("moemesh_gateway_kvcache_attend_failures_total");

        HttpResponse<String> r = complete(Completions.prompt(60, 102), 250).get();

        assertThat(r.statusCode()).as(r.body()).isEqualTo(503);
        assertThat(r.headers().firstValue("Retry-After")).contains("1");
        JsonNode error = JSON.readTree(r.body()).at("/error");
        assertThat(error.at("/code").stringValue()).isEqualTo("kvcache_unavailable");
        assertThat(error.at("/message").stringValue()).isEqualTo("the KV-cache service failed to attend this request's "
                + "offloaded prefix; retry");
        assertThat(r.body()).doesNotContain(KV.endpoint()).doesNotContain("sequence");
        assertThat(api.metric("moemesh_gateway_kvcache_attend_failures_total") - failures).isEqualTo(1);
        await().atMost(Duration.ofSeconds(10))
                .until(() -> api.metric("moemesh_gateway_kvcache_attend_pinned_sequences") == 0);
    }

    @Test
    void anAttendThatFails_failsOnlyItsRequest_aShortOneInTheSameStepsGetsItsReferenceText() throws Exception {
        int[] longPrompt = Completions.prompt(60, 105);
        // 3 + 44 positions: below threshold-tokens, it never attends
        int[] shortPrompt = Completions.prompt(2, 106);
        int attends = KV.attends.get();
        CompletableFuture<HttpResponse<String>> longOne = complete(longPrompt, 250);
        await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(5)).until(() -> KV.attends.get() > attends);
        CompletableFuture<HttpResponse<String>> shortOne = complete(shortPrompt, 44);
        await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(1))
                .until(() -> api.metric("moemesh_gateway_sequences_running") == 2);

        // The engine thread waits for the failing Attend meanwhile: what runs then is that step's batch.
        AtomicInteger runningAtFailure = new AtomicInteger(-1);
        KV.onFailedAttend = () -> runningAtFailure.compareAndSet(-1, loop.running());
        KV.failAttend = true; // the long one's next step fails its Attend; the short one is in that step too

        assertThat(longOne.get().statusCode()).isEqualTo(503);
        assertThat(runningAtFailure.get()).as("the short one still ran when the long one's Attend failed: the step "
                + "ran again without the long one").isEqualTo(2);
        HttpResponse<String> r = shortOne.get();
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        assertThat(JSON.readTree(r.body()).at("/choices/0/text").stringValue())
                .isEqualTo(ReferenceText.greedy(model, shortPrompt, 44));
    }

    @Test
    void anAttendSlowerThanItsTimeout_failsTheRequest_with503() throws Exception {
        KV.attendDelay = Duration.ofSeconds(5);

        HttpResponse<String> r = complete(Completions.prompt(60, 103), 250).get();

        assertThat(r.statusCode()).as(r.body()).isEqualTo(503);
        assertThat(JSON.readTree(r.body()).at("/error/message").stringValue())
                .isEqualTo("the KV-cache service failed to attend this request's offloaded prefix; retry");
    }

    @Test
    void aServiceThatCannotPin_leavesTheSequenceLocal_withTheReferenceText() throws Exception {
        KV.failPin = true;
        int[] prompt = Completions.prompt(60, 104);
        double failures = api.metric("moemesh_gateway_kvcache_attend_offload_failures_total");
        int attends = KV.attends.get();

        HttpResponse<String> r = complete(prompt, 60).get();

        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        assertThat(JSON.readTree(r.body()).at("/choices/0/text").stringValue())
                .isEqualTo(ReferenceText.greedy(model, prompt, 60));
        assertThat(api.metric("moemesh_gateway_kvcache_attend_offload_failures_total") - failures).isEqualTo(1);
        assertThat(KV.attends.get()).isEqualTo(attends);
    }
}
