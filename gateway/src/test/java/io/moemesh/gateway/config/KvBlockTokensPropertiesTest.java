package io.moemesh.gateway.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.boot.context.properties.bind.BindException;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;

/** moemesh.gateway.kv-block-tokens, bound as Spring binds it. */
class KvBlockTokensPropertiesTest {

    private static GatewayProperties bind(Map<String, String> extra) {
        Map<String, String> m = new HashMap<>(Map.of("moemesh.gateway.model-dir", "/models/x"));
        m.putAll(extra);
        return new Binder(new MapConfigurationPropertySource(m)).bindOrCreate("moemesh.gateway", GatewayProperties.class);
    }

    @Test
    void default_is16Tokens_thePrefixCacheDefault() {
        assertThat(bind(Map.of()).kvBlockTokens()).isEqualTo(16);
        assertThat(bind(Map.of("moemesh.gateway.kv-block-tokens", "32")).kvBlockTokens()).isEqualTo(32);
    }

    @ParameterizedTest(name = "kv-block-tokens={0}, kv-cache-tokens={1}")
    @CsvSource({"0, 65536", "-16, 65536", "1025, 65536", "64, 32"})
    void outOfRange_refusedAtStartup_namingTheProperty(String blockTokens, String cacheTokens) {
        assertThatThrownBy(() -> bind(Map.of("moemesh.gateway.kv-block-tokens", blockTokens,
                "moemesh.gateway.kv-cache-tokens", cacheTokens)))
                .isInstanceOf(BindException.class).rootCause().isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("moemesh.gateway.kv-block-tokens must be in [1, 1024] and at most kv-cache-tokens")
                .hasMessageEndingWith("got " + blockTokens);
    }
}
