package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.gateway.support.Completions;
import io.moemesh.gateway.support.RealKvCacheService;
import io.moemesh.gateway.support.ReferenceText;
import io.moemesh.model.MoeModel;
import io.moemesh.model.golden.TestModels;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * A prompt longer than the gateway's whole KV pool (128 positions), with Attend offload working and a step token
 * budget (512, the default) larger than the pool: the scheduler cuts its prefill into chunks that fit the pool
 * past the sequence's remote prefix, the offload moves its old blocks to the kvcache-service between chunks, and the
 * request gets the reference engine's text. Before, the first chunk asked for the whole prompt's positions at once,
 * never fit even in an empty pool, and the request waited at the head of the queue forever. The engine loop's idle
 * poll is 10 min here: each settled offload must wake it for the next chunk, or the request would wait out a poll
 * per chunk and miss its 120 s (with a 30 s poll it took 63 s before the offload woke the loop, 0.6 s after).
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class KvCacheAttendLongPromptHttpTest {
    private static final String MODEL = TestModels.MIXTRAL;
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newHttpClient();
    private static final RealKvCacheService KV;

    static {
        try {
            KV = new RealKvCacheService(TestModels.dir(MODEL), Files.createTempDirectory(Files.createDirectories(
                    Path.of("target")), "kvcache-attend-long"), 16);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static MoeModel model;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        KvCacheGatewayProperties.add(r, MODEL, 128, KV::endpoint);
        r.add("moemesh.gateway.kvcache.attend.enabled", () -> "true");
        r.add("moemesh.gateway.kvcache.attend.threshold-tokens", () -> "48");
        r.add("moemesh.gateway.kvcache.attend.local-blocks", () -> "2");
        r.add("moemesh.gateway.placement-poll-interval", () -> "10m");
    }

    @LocalServerPort
    int port;

    @BeforeAll
    static void open() {
        model = MoeModel.open(TestModels.dir(MODEL));
    }

    @AfterAll
    static void stop() {
        model.close();
        KV.close();
    }

    @Test
    void aPromptLongerThanThePool_withABudgetLargerThanThePool_isPrefilledInChunks_withTheReferenceText()
            throws Exception {
        int[] prompt = Completions.prompt(300, 301);
        String body = JSON.writeValueAsString(Map.of("model", MODEL, "prompt", prompt, "max_tokens", 20,
                "temperature", 0, "ignore_eos", true));

        HttpResponse<String> r = HTTP.sendAsync(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                                + "/v1/completions")).header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString())
                .get(120, java.util.concurrent.TimeUnit.SECONDS);

        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        JsonNode json = JSON.readTree(r.body());
        assertThat(json.at("/usage/prompt_tokens").intValue()).isEqualTo(301);
        assertThat(json.at("/choices/0/text").stringValue()).isEqualTo(ReferenceText.greedy(model, prompt, 20));
    }
}
