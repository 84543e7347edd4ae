package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.gateway.support.Completions;
import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.model.golden.TestModels;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Attend offload over a gateway pool of 128 positions (8 blocks of 16) and a black-holed kvcache-service (it stores
 * blocks but never answers a Pin): every offload times out. Once 3 did in a row the service looks down, and a
 * sequence that finds no room for its copies (offloads still in flight hold them all) does not wait for it: it runs
 * on with its blocks local. A prompt longer than the pool then fills the pool with no offload of its own to wait
 * for, and the scheduler ends it. Before, that end was the scheduler's "does not fit" IllegalArgumentException, a
 * 400 invalid_request_error for a prompt the advertised context admits; it is the 503 kvcache_unavailable a prompt
 * gets whose own offload failed.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class KvCacheAttendServiceDownHttpTest {
    private static final String MODEL = TestModels.MIXTRAL;
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newHttpClient();
    private static final FakeKvCacheService KV = new FakeKvCacheService(16);
    /** Copies the offloads may hold at once: three offloads of 2 blocks. */
    private static final int COPY_BUDGET = 6;

    static {
        KV.silentPins = true;
    }

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        KvCacheGatewayProperties.add(r, MODEL, 128, KV::endpoint);
        // Chunks smaller than the pool, so a prompt longer than it is prefilled up to the pool's end.
        r.add("moemesh.gateway.step-token-budget", () -> "32");
        r.add("moemesh.gateway.kvcache.write-back-queue-blocks", () -> Integer.toString(COPY_BUDGET));
        r.add("moemesh.gateway.kvcache.attend.enabled", () -> "true");
        r.add("moemesh.gateway.kvcache.attend.threshold-tokens", () -> "48");
        r.add("moemesh.gateway.kvcache.attend.local-blocks", () -> "2");
        // How long the second round of offloads holds the room: the long prompt's prefill is over long before.
        r.add("moemesh.gateway.kvcache.attend.offload-timeout", () -> "5s");
    }

    @LocalServerPort
    int port;

    @Autowired
    AttendOffload attend;

    @AfterAll
    static void stop() {
        KV.silentPins = false;
        KV.close();
    }

    private HttpResponse<String> complete(int[] prompt, int maxTokens) throws Exception {
        String body = JSON.writeValueAsString(Map.of("model", MODEL, "prompt", prompt, "max_tokens", maxTokens,
                "temperature", 0, "ignore_eos", true));
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v1/completions"))
                        .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body))
                        .timeout(Duration.ofSeconds(60)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    /**
     * Three requests whose 65 final positions each start an offload of their 2 oldest blocks (2 copies) and which
     * end at once (1 token): the offloads outlive them, holding the copies until they time out.
     */
    private void offloadThree(long seed) throws Exception {
        for (int i = 0; i < 3; i++) {
            HttpResponse<String> r = complete(Completions.prompt(64, seed + i), 1);
            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        }
    }

    @Test
    void aPromptLongerThanThePool_whileTheServiceLooksDownAndOffloadsHoldTheCopyRoom_endsWith503() throws Exception {
        offloadThree(301);
        await().atMost(Duration.ofSeconds(60)).until(() -> attend.offloadFailures() >= AttendOffload.DOWN_AFTER_FAILURES
                && attend.copyRoom() == COPY_BUDGET);

        // The service looks down; three more offloads, in flight for 5 s, hold every copy's room.
        offloadThree(311);
        assertThat(attend.copyRoom()).isZero();

        HttpResponse<String> r = complete(Completions.prompt(150, 321), 10);

        assertThat(r.statusCode()).as(r.body()).isEqualTo(503);
        JsonNode error = JSON.readTree(r.body()).at("/error");
        assertThat(error.at("/type").stringValue()).isEqualTo("service_unavailable");
        assertThat(error.at("/code").stringValue()).isEqualTo("kvcache_unavailable");
        assertThat(error.at("/message").stringValue()).contains("151 tokens", "128 positions", "kvcache-service")
                .doesNotContain("Exception");
        assertThat(r.headers().firstValue("Retry-After")).contains("1");
    }
}
