package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.golden.TestModels;
import io.moemesh.model.kv.PrefixCachingKvCache;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * {@code moemesh.gateway.kv-block-tokens}: the KV cache's block size is the gateway's setting (the kvcache-service must
 * use the same), so prefix reuse comes in blocks of that many tokens, and the tokens stay the same.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class KvBlockTokensHttpTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final String MODEL = TestModels.MIXTRAL_BF16;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("moemesh.gateway.kv-block-tokens", () -> "5");
    }

    @LocalServerPort
    int port;

    @Autowired
    PrefixCachingKvCache cache;

    private JsonNode complete(String prompt) throws Exception {
        HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                        URI.create("http://127.0.0.1:" + port + "/v1/completions"))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(
                        JSON.writeValueAsString(Map.of("model", MODEL, "prompt", prompt, "max_tokens", 4,
                                "temperature", 0)))).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return JSON.readTree(r.body());
    }

    @Test
    void blocksOfFiveTokens_aRepeatedPromptReusesAllButTheLastPartialBlock_sameText() throws Exception {
        assertThat(cache.blockTokens()).isEqualTo(5);
        String p = "Tell me about rivers. ".repeat(6);
        JsonNode first = complete(p);
        JsonNode second = complete(p);
        int prompt = first.at("/usage/prompt_tokens").intValue();
        int cached = second.at("/usage/prompt_tokens_details/cached_tokens").intValue();
        // Full blocks only, and never the whole prompt: its last token is computed for its logits.
        assertThat(cached).isEqualTo((prompt - 1) / 5 * 5).isPositive();
        assertThat(second.at("/choices/0/text").stringValue()).isEqualTo(first.at("/choices/0/text").stringValue());
    }
}
