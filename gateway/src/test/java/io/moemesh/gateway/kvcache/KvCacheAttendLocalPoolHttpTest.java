package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.gateway.support.Completions;
import io.moemesh.gateway.support.RealKvCacheService;
import io.moemesh.model.golden.TestModels;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
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
 * Attend offload over a gateway pool of 128 positions (8 blocks of 16) and a kvcache-service that cannot pin: every
 * offload fails, so each sequence keeps all its blocks locally and must end where the pool ends, as it would
 * without offload (the cache's own bound is lifted for all sequences by the offload). A decode that reaches the
 * pool ends with finish reason length; a prompt that outgrew the pool while its offload failed ends with 503. In
 * both cases the scheduler goes on admitting others, and the pinned-sequences gauge never counts a sequence whose
 * offload pinned nothing.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class KvCacheAttendLocalPoolHttpTest {
    private static final String MODEL = TestModels.MIXTRAL;
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newHttpClient();
    private static final int POOL_POSITIONS = 128;
    private static final RealKvCacheService KV;

    static {
        try {
            KV = new RealKvCacheService(TestModels.dir(MODEL), Files.createTempDirectory(Files.createDirectories(
                    Path.of("target")), "kvcache-attend-pool"), 16);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        KV.failPin = true;
    }

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        KvCacheGatewayProperties.add(r, MODEL, POOL_POSITIONS, KV::endpoint);
        // Chunks smaller than the pool, so a prompt longer than it is prefilled up to the pool's end.
        r.add("moemesh.gateway.step-token-budget", () -> "32");
        r.add("moemesh.gateway.kvcache.attend.enabled", () -> "true");
        r.add("moemesh.gateway.kvcache.attend.threshold-tokens", () -> "48");
        r.add("moemesh.gateway.kvcache.attend.local-blocks", () -> "2");
    }

    @LocalServerPort
    int port;

    @LocalManagementPort
    int managementPort;

    @Autowired
    AttendOffload attend;

    private Completions api;

    @AfterAll
    static void stop() {
        KV.close();
    }

    @BeforeEach
    void api() {
        api = new Completions(MODEL, port, managementPort);
    }

    private CompletableFuture<HttpResponse<String>> complete(int[] prompt, int maxTokens) {
        String body = JSON.writeValueAsString(Map.of("model", MODEL, "prompt", prompt, "max_tokens", maxTokens,
                "temperature", 0, "ignore_eos", true));
        return HTTP.sendAsync(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v1/completions"))
                        .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void aDecodeWhoseOffloadFailed_endsWithLengthAtThePoolsEnd_andOthersAreStillServed() throws Exception {
        long failures = attend.offloadFailures();

        CompletableFuture<HttpResponse<String>> longOne = complete(Completions.prompt(60, 201), 120);
        // Once its offload failed, nothing is pinned for it: the gauge does not count it.
        await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(1))
                .until(() -> attend.offloadFailures() > failures);
        assertThat(attend.pinnedSequences()).isZero();
        CompletableFuture<HttpResponse<String>> shortOne = complete(Completions.prompt(5, 202), 5);

        await().atMost(Duration.ofSeconds(60)).until(() -> longOne.isDone() && shortOne.isDone());
        HttpResponse<String> r = longOne.get();
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        JsonNode json = JSON.readTree(r.body());
        assertThat(json.at("/choices/0/finish_reason").stringValue()).isEqualTo("length");
        // BOS and 60 prompt tokens, then tokens up to the pool's 128 positions: 67 when the failure is known before
        // the sequence reaches them (it ends there, as the scheduler ends any sequence at the cache's bound); one
        // more when the failure arrives later, on a loaded machine, since the token sampled after the pool's last
        // position needs no KV of its own. Never a token that would need a position past the pool.
        assertThat(json.at("/usage/completion_tokens").intValue()).isBetween(POOL_POSITIONS - 61, POOL_POSITIONS - 60);
        assertThat(shortOne.get().statusCode()).as(shortOne.get().body()).isEqualTo(200);
        assertThat(api.metric("moemesh_gateway_kvcache_attend_pinned_sequences")).isZero();
    }

    @Test
    void aPromptLongerThanThePool_whoseOffloadFailed_endsWith503_andOthersAreStillServed() throws Exception {
        CompletableFuture<HttpResponse<String>> longOne = complete(Completions.prompt(150, 203), 10);
        CompletableFuture<HttpResponse<String>> shortOne = complete(Completions.prompt(5, 204), 5);

        await().atMost(Duration.ofSeconds(60)).until(() -> longOne.isDone() && shortOne.isDone());
        HttpResponse<String> r = longOne.get();
        assertThat(r.statusCode()).as(r.body()).isEqualTo(503);
        JsonNode error = JSON.readTree(r.body()).at("/error");
        assertThat(error.at("/code").stringValue()).isEqualTo("kvcache_unavailable");
        assertThat(error.at("/message").stringValue()).contains("151 tokens", "128 positions", "kvcache-service")
                .doesNotContain("Exception");
        assertThat(shortOne.get().statusCode()).as(shortOne.get().body()).isEqualTo(200);
        assertThat(attend.pinnedSequences()).isZero();
    }
}
