package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.gateway.support.Completions;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.kv.PrefixCachingKvCache;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * {@code moemesh.gateway.kv-block-tokens}: the KV cache's block size is the gateway's setting (the kvcache-service must
 * use the same), so prefix reuse comes in blocks of that many tokens, and the tokens stay the same.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class KvBlockTokensHttpTest {
    private static final String MODEL = TestModels.MIXTRAL_BF16;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("moemesh.gateway.kv-block-tokens", () -> "5");
    }

    @LocalServerPort
    int port;
    @LocalManagementPort
    int managementPort;

    @Autowired
    PrefixCachingKvCache cache;

    @Test
    void blocksOfFiveTokens_aRepeatedPromptReusesAllButTheLastPartialBlock_sameText() throws Exception {
        assertThat(cache.blockTokens()).isEqualTo(5);
        Completions api = new Completions(MODEL, port, managementPort);
        int[] prompt = Completions.prompt(23, 7);
        Completions.Result first = api.complete(prompt, 4);
        Completions.Result second = api.complete(prompt, 4);
        assertThat(first.cached()).isZero();
        // Full blocks only, and never the whole prompt: its last token is computed for its logits.
        assertThat(second.cached()).isEqualTo(20);
        assertThat(second.text()).isEqualTo(first.text());
    }
}
