package io.moemesh.gateway.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.gateway.kvcache.RemotePrefixes;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** moemesh.gateway.kvcache.*: defaults, and every bad value refused naming its property. */
class KvCachePropertiesTest {

    @Test
    void defaults_areOff_withDocumentedValues() {
        KvCacheProperties k = KvCacheProperties.off();
        assertThat(k.enabled()).isFalse();
        assertThat(k.fetchTimeout()).isEqualTo(Duration.ofSeconds(2));
        assertThat(k.mode()).isEqualTo(RemotePrefixes.Mode.AUTO);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "endpoint          | nohost   | 1   | 1 | 1 | 1 | auto",
        "fetch-timeout     | h:1      | 0   | 1 | 1 | 1 | auto",
        "min-fetch-blocks  | h:1      | 1   | 0 | 1 | 1 | auto",
        "write-back-queue-blocks | h:1 | 1 | 1 | 0 | 1 | auto",
        "fetch-threads     | h:1      | 1   | 1 | 1 | 0 | auto",
        "preemption        | h:1      | 1   | 1 | 1 | 1 | sometimes"})
    void aBadValue_isRefused_namingItsProperty(String property, String endpoint, int fetchSeconds, int minBlocks,
                                               int queue, int threads, String preemption) {
        assertThatThrownBy(() -> new KvCacheProperties(endpoint, Duration.ofSeconds(fetchSeconds), minBlocks, queue,
                null, 10, threads, preemption, null)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("moemesh.gateway.kvcache." + property);
    }

    @ParameterizedTest
    @CsvSource({"auto, AUTO", "RECOMPUTE, RECOMPUTE", " swap , SWAP"})
    void preemption_namesAMode(String value, RemotePrefixes.Mode mode) {
        assertThat(new KvCacheProperties("h:1", null, 1, 1, null, 1, 1, value, null).mode()).isEqualTo(mode);
    }
}
