package io.moemesh.kvcache.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.kvcache.policy.StorePolicy;
import io.moemesh.kvcache.tier.FsyncPolicy;
import io.moemesh.service.tls.TlsSettings;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

class KvCachePropertiesTest {
    /** The defaults of application.yaml, plaintext, with a model and an SSD directory. */
    record P(List<Path> modelDirs, int blockTokens, int grpcPort, long dramBytes, Path ssdDir, long ssdBytes,
             long segmentBytes, FsyncPolicy fsync, Duration fsyncInterval, double fraction, Duration compaction,
             int maxInbound) {
        static P defaults() {
            return new P(List.of(Path.of("m")), 16, 9500, 256L << 20, Path.of("ssd"), 4L << 30, 256L << 20,
                    FsyncPolicy.INTERVAL, Duration.ofSeconds(1), 0.5, Duration.ofMinutes(1), 16 << 20);
        }

        KvCacheProperties build() {
            return new KvCacheProperties(modelDirs, blockTokens, "127.0.0.1", grpcPort, dramBytes, ssdDir, ssdBytes,
                    segmentBytes, fsync, fsyncInterval, 64L << 20, fraction, compaction, false, false, "conversation",
                    maxInbound,
                    Duration.ofSeconds(10), TlsSettings.plaintext(), null, null);
        }
    }

    @Test
    void defaults_areValid() {
        KvCacheProperties p = P.defaults().build();
        assertThat(p.fsync()).isEqualTo(FsyncPolicy.INTERVAL);
        assertThat(p.modelDirs()).containsExactly(Path.of("m"));
    }

    static Stream<Arguments> bad() {
        return Stream.<Arguments>of(
                Arguments.of((UnaryOperator<P>) p -> new P(List.of(), p.blockTokens(), p.grpcPort(), p.dramBytes(),
                        p.ssdDir(), p.ssdBytes(), p.segmentBytes(), p.fsync(), p.fsyncInterval(), p.fraction(),
                        p.compaction(), p.maxInbound()), "moemesh.kvcache.model-dirs (MOEMESH_KVCACHE_MODEL_DIRS) is required"),
                Arguments.of((UnaryOperator<P>) p -> new P(p.modelDirs(), 0, p.grpcPort(), p.dramBytes(), p.ssdDir(),
                        p.ssdBytes(), p.segmentBytes(), p.fsync(), p.fsyncInterval(), p.fraction(), p.compaction(),
                        p.maxInbound()), "moemesh.kvcache.block-tokens must be in [1, 4096]"),
                Arguments.of((UnaryOperator<P>) p -> new P(p.modelDirs(), 16, 70000, p.dramBytes(), p.ssdDir(),
                        p.ssdBytes(), p.segmentBytes(), p.fsync(), p.fsyncInterval(), p.fraction(), p.compaction(),
                        p.maxInbound()), "moemesh.kvcache.grpc-port must be in [0, 65535]"),
                Arguments.of((UnaryOperator<P>) p -> new P(p.modelDirs(), 16, p.grpcPort(), 0, p.ssdDir(),
                        p.ssdBytes(), p.segmentBytes(), p.fsync(), p.fsyncInterval(), p.fraction(), p.compaction(),
                        p.maxInbound()), "moemesh.kvcache.dram-bytes must be > 0"),
                Arguments.of((UnaryOperator<P>) p -> new P(p.modelDirs(), 16, p.grpcPort(), p.dramBytes(), null,
                        p.ssdBytes(), p.segmentBytes(), p.fsync(), p.fsyncInterval(), p.fraction(), p.compaction(),
                        p.maxInbound()), "moemesh.kvcache.ssd-dir (MOEMESH_KVCACHE_SSD_DIR) is required"),
                Arguments.of((UnaryOperator<P>) p -> new P(p.modelDirs(), 16, p.grpcPort(), p.dramBytes(), p.ssdDir(),
                        -1, p.segmentBytes(), p.fsync(), p.fsyncInterval(), p.fraction(), p.compaction(),
                        p.maxInbound()), "moemesh.kvcache.ssd-bytes must be > 0"),
                Arguments.of((UnaryOperator<P>) p -> new P(p.modelDirs(), 16, p.grpcPort(), p.dramBytes(), p.ssdDir(),
                        p.ssdBytes(), 100, p.fsync(), p.fsyncInterval(), p.fraction(), p.compaction(),
                        p.maxInbound()), "moemesh.kvcache.segment-bytes must be >= 4096"),
                Arguments.of((UnaryOperator<P>) p -> new P(p.modelDirs(), 16, p.grpcPort(), p.dramBytes(), p.ssdDir(),
                        p.ssdBytes(), p.segmentBytes(), p.fsync(), Duration.ZERO, p.fraction(), p.compaction(),
                        p.maxInbound()), "moemesh.kvcache.fsync-interval must be > 0"),
                Arguments.of((UnaryOperator<P>) p -> new P(p.modelDirs(), 16, p.grpcPort(), p.dramBytes(), p.ssdDir(),
                        p.ssdBytes(), p.segmentBytes(), p.fsync(), p.fsyncInterval(), 1.5, p.compaction(),
                        p.maxInbound()), "moemesh.kvcache.compaction-live-fraction must be in [0, 1]"),
                Arguments.of((UnaryOperator<P>) p -> new P(p.modelDirs(), 16, p.grpcPort(), p.dramBytes(), p.ssdDir(),
                        p.ssdBytes(), p.segmentBytes(), p.fsync(), p.fsyncInterval(), p.fraction(),
                        Duration.ofSeconds(-1), p.maxInbound()), "moemesh.kvcache.compaction-period must be >= 0"),
                Arguments.of((UnaryOperator<P>) p -> new P(p.modelDirs(), 16, p.grpcPort(), p.dramBytes(), p.ssdDir(),
                        p.ssdBytes(), p.segmentBytes(), p.fsync(), p.fsyncInterval(), p.fraction(), p.compaction(),
                        1000), "moemesh.kvcache.max-inbound-message-bytes must be >= 65536"));
    }

    @ParameterizedTest
    @MethodSource("bad")
    void aBadSetting_isRefused_namingTheProperty(UnaryOperator<P> change, String message) {
        assertThatThrownBy(() -> change.apply(P.defaults()).build()).isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith(message);
    }

    @Test
    void mtlsWithoutFiles_isRefused_namingTheTlsProperties() {
        assertThatThrownBy(() -> new KvCacheProperties(List.of(Path.of("m")), 16, "h", 0, 1, Path.of("s"), 1, 4096,
                FsyncPolicy.ALWAYS, Duration.ofSeconds(1), 1, 0.5, Duration.ZERO, false, false, "lru", 65536,
                Duration.ZERO,
                null, null, null)).hasMessageStartingWith("moemesh.kvcache.tls.mode is mtls (the default), but "
                + "moemesh.kvcache.tls.cert-chain (MOEMESH_KVCACHE_TLS_CERT_CHAIN)");
    }

    static KvCacheProperties withPolicy(String policy) {
        return new KvCacheProperties(List.of(Path.of("m")), 16, "127.0.0.1", 0, 1, Path.of("s"), 1, 4096,
                FsyncPolicy.NEVER, Duration.ofSeconds(1), 1, 0.5, Duration.ZERO, false, false, policy, 65536,
                Duration.ZERO, TlsSettings.plaintext(), null, null);
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', textBlock = """
            conversation    | conversation | CONVERSATION
            lru             | lru          | LRU
            ' LRU '         | lru          | LRU
            Conversation    | conversation | CONVERSATION""")
    void policy_isOneOfTheKnownNames_caseInsensitive(String configured, String label, StorePolicy expected) {
        KvCacheProperties p = withPolicy(configured);
        assertThat(p.policy()).isEqualTo(label);
        assertThat(p.storePolicy()).isEqualTo(expected);
    }

    @Test
    void policy_defaultsToConversation_theBestMeasured() {
        assertThat(P.defaults().build().storePolicy()).isEqualTo(StorePolicy.CONVERSATION);
    }

    @ParameterizedTest
    @ValueSource(strings = {"arc", "", "lfu"})
    void anUnknownPolicy_isRefused_namingThePropertyAndTheKnownNames(String name) {
        assertThatThrownBy(() -> withPolicy(name)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("moemesh.kvcache.policy (MOEMESH_KVCACHE_POLICY): unknown policy '" + name
                        + "'; known: conversation, lru");
    }
}
