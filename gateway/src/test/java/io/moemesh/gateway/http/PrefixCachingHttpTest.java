package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.model.golden.TestModels;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Automatic prefix caching through the public HTTP API with two API keys (experts in-process): OpenAI's
 * {@code usage.prompt_tokens_details.cached_tokens} in both modes, the same text with and without a hit, tenants
 * that never share blocks, and the Prometheus counters. Every test uses its own prompt text, so the order the
 * tests run in does not matter.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class PrefixCachingHttpTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newHttpClient();
    private static final String MODEL = TestModels.MIXTRAL_BF16;
    private static final String ALICE = "sk-alice-123";
    private static final String BOB = "sk-bob-456";

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("management.server.port", () -> "0");
        r.add("moemesh.gateway.api-keys", () -> ALICE + ":alice," + BOB + ":bob");
    }

    @LocalServerPort
    int port;

    @LocalManagementPort
    int managementPort;

    private HttpResponse<String> post(String key, Map<String, Object> body) throws Exception {
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v1/completions"))
                .header("Content-Type", "application/json").header("Authorization", "Bearer " + key)
                .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body))).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return r;
    }

    /** A prompt of well over three 16-token blocks, its words chosen by {@code topic}. */
    private static String prompt(String topic) {
        return ("Tell me about " + topic + ". ").repeat(12) + "Now write a long story about " + topic + ":";
    }

    private static Map<String, Object> request(String prompt, boolean stream) {
        return stream
                ? Map.of("model", MODEL, "prompt", prompt, "max_tokens", 12, "temperature", 0, "stream", true,
                        "stream_options", Map.of("include_usage", true))
                : Map.of("model", MODEL, "prompt", prompt, "max_tokens", 12, "temperature", 0);
    }

    /** Text and usage of a completion, non-streamed or streamed (the text deltas joined, the usage chunk). */
    private record Result(String text, JsonNode usage) {
        int cached() {
            assertThat(usage.at("/prompt_tokens_details/cached_tokens").isInt())
                    .as("cached_tokens is always present: %s", usage).isTrue();
            return usage.at("/prompt_tokens_details/cached_tokens").intValue();
        }

        int prompt() {
            return usage.at("/prompt_tokens").intValue();
        }
    }

    private Result complete(String key, String prompt, boolean stream) throws Exception {
        HttpResponse<String> r = post(key, request(prompt, stream));
        if (!stream) {
            JsonNode body = JSON.readTree(r.body());
            return new Result(body.at("/choices/0/text").stringValue(), body.at("/usage"));
        }
        List<String> events = OpenAiHttpTest.events(r.body());
        assertThat(events.getLast()).isEqualTo("[DONE]");
        StringBuilder text = new StringBuilder();
        for (String e : events.subList(0, events.size() - 2)) {
            text.append(JSON.readTree(e).at("/choices/0/text").stringValue());
        }
        return new Result(text.toString(), JSON.readTree(events.get(events.size() - 2)).at("/usage"));
    }

    /** What a hit reuses: the full blocks before the prompt's last token. */
    private static int fullBlocksBeforeTheLastToken(int promptTokens) {
        return (promptTokens - 1) / 16 * 16;
    }

    @Test
    void repeatedPrompt_reportsCachedTokens_inBothModes_withTheSameText() throws Exception {
        String p = prompt("lighthouses");
        Result miss = complete(ALICE, p, false);
        assertThat(miss.cached()).isZero();
        assertThat(miss.prompt()).isGreaterThan(48);

        Result hit = complete(ALICE, p, false);
        assertThat(hit.cached()).isEqualTo(fullBlocksBeforeTheLastToken(miss.prompt())).isPositive();
        assertThat(hit.text()).isEqualTo(miss.text());

        Result streamed = complete(ALICE, p, true);
        assertThat(streamed.cached()).isEqualTo(hit.cached());
        assertThat(streamed.text()).isEqualTo(miss.text());
        assertThat(streamed.usage().at("/total_tokens").intValue()).isEqualTo(miss.prompt() + 12);
    }

    @Test
    void aStreamedMiss_reportsZeroCachedTokens_inItsUsageChunk() throws Exception {
        assertThat(complete(BOB, prompt("glaciers"), true).cached()).isZero();
    }

    @Test
    void tenantB_neverGetsTenantAsBlocks_butItsOwn() throws Exception {
        String p = prompt("volcanoes");
        Result aliceMiss = complete(ALICE, p, false);
        Result aliceHit = complete(ALICE, p, false);
        assertThat(aliceHit.cached()).isPositive();

        Result bobFirst = complete(BOB, p, false);
        assertThat(bobFirst.cached()).as("bob's first request after alice's hit").isZero();
        assertThat(bobFirst.text()).isEqualTo(aliceMiss.text());
        Result bobSecond = complete(BOB, p, true);
        assertThat(bobSecond.cached()).isEqualTo(aliceHit.cached());
        assertThat(bobSecond.text()).isEqualTo(aliceMiss.text());
    }

    @Test
    void prometheus_countsLookedUpAndCachedPromptTokens_andCachedBlocks() throws Exception {
        String p = prompt("comets");
        double queried = metric("moemesh_gateway_prefix_cache_queried_tokens_total");
        double hits = metric("moemesh_gateway_prefix_cache_hit_tokens_total");
        Result miss = complete(ALICE, p, false);
        Result hit = complete(ALICE, p, false);
        assertThat(metric("moemesh_gateway_prefix_cache_queried_tokens_total") - queried)
                .isEqualTo(miss.prompt() + hit.prompt());
        assertThat(metric("moemesh_gateway_prefix_cache_hit_tokens_total") - hits).isEqualTo(hit.cached());
        // once the engine has released the finished sequence, its blocks are cached or free, none is used
        await().atMost(Duration.ofSeconds(30)).until(() -> metric("moemesh_gateway_kv_blocks_used") == 0);
        assertThat(metric("moemesh_gateway_kv_blocks_cached")).isGreaterThanOrEqualTo(hit.cached() / 16);
        assertThat(metric("moemesh_gateway_kv_blocks_capacity")).as("the pool the documented free = total - used - "
                + "cached is read from").isGreaterThanOrEqualTo(metric("moemesh_gateway_kv_blocks_cached")).isPositive();
        assertThat(metric("moemesh_gateway_engine_steps_total")).as("two requests ran steps").isGreaterThanOrEqualTo(2);
    }

    private double metric(String name) throws Exception {
        String body = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + managementPort
                + "/actuator/prometheus")).build(), HttpResponse.BodyHandlers.ofString()).body();
        Matcher m = Pattern.compile("(?m)^" + name + "(?:\\{[^}]*})? (\\S+)$").matcher(body);
        assertThat(m.find()).as("%s in%n%s", name, body).isTrue();
        return Double.parseDouble(m.group(1));
    }
}
