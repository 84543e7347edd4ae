package io.moemesh.kvcache.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.kvcache.policy.StorePolicy;
import io.moemesh.kvcache.tier.FsyncPolicy;
import io.moemesh.service.settings.SettingRefusedException;
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
                    Duration.ofSeconds(10), TlsSettings.plaintext(), null, null, 32, "keep");
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
                        p.maxInbound()), "moemesh.kvcache.block-tokens must be in [1, 1024]"),
                // The gateway refuses kv-block-tokens above 1024: a service with larger blocks could serve none.
                Arguments.of((UnaryOperator<P>) p -> new P(p.modelDirs(), 1025, p.grpcPort(), p.dramBytes(), p.ssdDir(),
                        p.ssdBytes(), p.segmentBytes(), p.fsync(), p.fsyncInterval(), p.fraction(), p.compaction(),
                        p.maxInbound()), "moemesh.kvcache.block-tokens must be in [1, 1024] (the gateway's block size, "
                        + "moemesh.gateway.kv-block-tokens, which is at most 1024), got 1025"),
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
                        p.maxInbound()), "moemesh.kvcache.fsync-interval must be >= 1ms, got PT0S"),
                // Positive, but a 0 ms timer period: it used to fail startup after the index rebuild, unexplained.
                Arguments.of((UnaryOperator<P>) p -> new P(p.modelDirs(), 16, p.grpcPort(), p.dramBytes(), p.ssdDir(),
                        p.ssdBytes(), p.segmentBytes(), p.fsync(), Duration.ofNanos(500_000), p.fraction(),
                        p.compaction(), p.maxInbound()),
                        "moemesh.kvcache.fsync-interval must be >= 1ms, got PT0.0005S"),
                Arguments.of((UnaryOperator<P>) p -> new P(p.modelDirs(), 16, p.grpcPort(), p.dramBytes(), p.ssdDir(),
                        p.ssdBytes(), p.segmentBytes(), p.fsync(), p.fsyncInterval(), p.fraction(),
                        Duration.ofNanos(500_000), p.maxInbound()),
                        "moemesh.kvcache.compaction-period must be 0 (never) or >= 1ms, got PT0.0005S"),
                Arguments.of((UnaryOperator<P>) p -> new P(p.modelDirs(), 16, p.grpcPort(), p.dramBytes(), p.ssdDir(),
                        p.ssdBytes(), p.segmentBytes(), p.fsync(), p.fsyncInterval(), 1.5, p.compaction(),
                        p.maxInbound()), "moemesh.kvcache.compaction-live-fraction must be in [0, 1]"),
                Arguments.of((UnaryOperator<P>) p -> new P(p.modelDirs(), 16, p.grpcPort(), p.dramBytes(), p.ssdDir(),
                        p.ssdBytes(), p.segmentBytes(), p.fsync(), p.fsyncInterval(), p.fraction(),
                        Duration.ofSeconds(-1), p.maxInbound()),
                        "moemesh.kvcache.compaction-period must be 0 (never) or >= 1ms, got PT-1S"),
                Arguments.of((UnaryOperator<P>) p -> new P(p.modelDirs(), 16, p.grpcPort(), p.dramBytes(), p.ssdDir(),
                        p.ssdBytes(), p.segmentBytes(), p.fsync(), p.fsyncInterval(), p.fraction(), p.compaction(),
                        1000), "moemesh.kvcache.max-inbound-message-bytes must be >= 1114112"),
                // Below the gateway's 1 MiB Put chunk plus a header: every write-back of a larger block would fail.
                Arguments.of((UnaryOperator<P>) p -> new P(p.modelDirs(), 16, p.grpcPort(), p.dramBytes(), p.ssdDir(),
                        p.ssdBytes(), p.segmentBytes(), p.fsync(), p.fsyncInterval(), p.fraction(), p.compaction(),
                        1 << 20), "moemesh.kvcache.max-inbound-message-bytes must be >= 1114112 (the gateway sends Put "
                        + "data in chunks of 1048576 bytes, 1 MiB, plus the block's header: every write-back of a "
                        + "larger block would fail), got 1048576"));
    }

    @ParameterizedTest
    @MethodSource("bad")
    void aBadSetting_isRefused_namingTheProperty(UnaryOperator<P> change, String message) {
        assertThatThrownBy(() -> change.apply(P.defaults()).build()).isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith(message);
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 1024})
    void blockTokens_upToTheGatewaysMaximum_isAccepted(int blockTokens) {
        P d = P.defaults();
        assertThat(new P(d.modelDirs(), blockTokens, d.grpcPort(), d.dramBytes(), d.ssdDir(), d.ssdBytes(),
                d.segmentBytes(), d.fsync(), d.fsyncInterval(), d.fraction(), d.compaction(), d.maxInbound()).build()
                .blockTokens()).isEqualTo(blockTokens);
    }

    @Test
    void aMillisecond_fsyncIntervalAndCompactionPeriod_areAccepted() {
        P d = P.defaults();
        KvCacheProperties p = new P(d.modelDirs(), d.blockTokens(), d.grpcPort(), d.dramBytes(), d.ssdDir(),
                d.ssdBytes(), d.segmentBytes(), d.fsync(), Duration.ofMillis(1), d.fraction(), Duration.ofMillis(1),
                d.maxInbound()).build();
        assertThat(p.fsyncInterval()).isEqualTo(Duration.ofMillis(1));
        assertThat(p.compactionPeriod()).isEqualTo(Duration.ofMillis(1));
    }

    @Test
    void maxInboundMessageBytes_ofTheGatewaysPutMessage_isAccepted() {
        P d = P.defaults();
        assertThat(new P(d.modelDirs(), d.blockTokens(), d.grpcPort(), d.dramBytes(), d.ssdDir(), d.ssdBytes(),
                d.segmentBytes(), d.fsync(), d.fsyncInterval(), d.fraction(), d.compaction(), 1114112).build()
                .maxInboundMessageBytes()).isEqualTo(KvCacheProperties.MIN_INBOUND_MESSAGE_BYTES);
    }

    @Test
    void maxPutStreams_belowOne_isRefused_namingTheProperty() {
        assertThatThrownBy(() -> new KvCacheProperties(List.of(Path.of("m")), 16, "h", 0, 1, Path.of("s"), 1, 4096,
                FsyncPolicy.ALWAYS, Duration.ofSeconds(1), 1, 0.5, Duration.ZERO, false, false, "lru", 16 << 20,
                Duration.ZERO, TlsSettings.plaintext(), null, null, 0, "keep"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("moemesh.kvcache.max-put-streams must be >= 1, got 0");
    }

    @Test
    void mtlsWithoutFiles_isRefused_namingTheTlsProperties() {
        assertThatThrownBy(() -> new KvCacheProperties(List.of(Path.of("m")), 16, "h", 0, 1, Path.of("s"), 1, 4096,
                FsyncPolicy.ALWAYS, Duration.ofSeconds(1), 1, 0.5, Duration.ZERO, false, false, "lru", 16 << 20,
                Duration.ZERO,
                null, null, null, 32, "keep")).hasMessageStartingWith("moemesh.kvcache.tls.mode is mtls (the default), but "
                + "moemesh.kvcache.tls.cert-chain (MOEMESH_KVCACHE_TLS_CERT_CHAIN)");
    }

    static KvCacheProperties withOrphanedStores(String orphanedStores) {
        return new KvCacheProperties(List.of(Path.of("m")), 16, "127.0.0.1", 0, 1, Path.of("s"), 1, 4096,
                FsyncPolicy.NEVER, Duration.ofSeconds(1), 1, 0.5, Duration.ZERO, false, false, "lru", 16 << 20,
                Duration.ZERO, TlsSettings.plaintext(), null, null, 32, orphanedStores);
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', nullValues = "null", textBlock = """
            keep   | false
            KEEP   | false
            delete | true
            Delete | true
            null   | false
            """)
    void orphanedStores_isKeepOrDelete_caseInsensitive_keepByDefault(String value, boolean deletes) {
        assertThat(withOrphanedStores(value).deleteOrphanedStores()).isEqualTo(deletes);
    }

    @ParameterizedTest
    @ValueSource(strings = {"remove", "", "true"})
    void orphanedStores_ofAnotherValue_isRefused_namingThePropertyAndTheValue(String value) {
        assertThatThrownBy(() -> withOrphanedStores(value)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("moemesh.kvcache.orphaned-stores (MOEMESH_KVCACHE_ORPHANED_STORES) must be keep or "
                        + "delete, got '" + value + "'");
    }

    static KvCacheProperties withPolicy(String policy) {
        return new KvCacheProperties(List.of(Path.of("m")), 16, "127.0.0.1", 0, 1, Path.of("s"), 1, 4096,
                FsyncPolicy.NEVER, Duration.ofSeconds(1), 1, 0.5, Duration.ZERO, false, false, policy, 16 << 20,
                Duration.ZERO, TlsSettings.plaintext(), null, null, 32, "keep");
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

    static KvCacheProperties withDram(long dramBytes) {
        P d = P.defaults();
        return new P(d.modelDirs(), d.blockTokens(), d.grpcPort(), dramBytes, d.ssdDir(), d.ssdBytes(),
                d.segmentBytes(), d.fsync(), d.fsyncInterval(), d.fraction(), d.compaction(), d.maxInbound()).build();
    }

    /**
     * What the launchers give pass: moemesh up's -Xmx of dram-bytes + 256 MiB (its default 256 MiB, and 4 GiB), the
     * chart's 4 GiB against 70% of 8 Gi, and the edges of the rule (3/4 of a small heap).
     */
    @ParameterizedTest(name = "{0}: dram {1} in heap {2}")
    @CsvSource({"moemesh up default, 268435456, 536870912", "moemesh up 4 GiB, 4294967296, 4563402752",
            "chart default, 4294967296, 6012954214", "3/4 of 512 MiB, 402653184, 536870912",
            "3/4 of a small heap, 268435456, 357913942"})
    void dramBytes_thatTheHeapHoldsBesideTheService_passTheHeapCheck(String name, long dram, long heap) {
        withDram(dram).checkDramFitsHeap(heap);
    }

    @ParameterizedTest(name = "dram {0} in heap {1}")
    @CsvSource({"4294967296, 4294967296, 4352 MiB", "402653185, 536870912, 513 MiB",
            "4294967296, 4294967295, 4352 MiB", "268435456, 268435456, 342 MiB"})
    void dramBytes_beyondWhatTheHeapHolds_isRefused_namingThePropertyTheHeapAndTheFix(long dram, long heap,
                                                                                     String neededHeap) {
        assertThatThrownBy(() -> withDram(dram).checkDramFitsHeap(heap))
                .isInstanceOfSatisfying(SettingRefusedException.class,
                        e -> assertThat(e.setting()).isEqualTo("moemesh.kvcache.dram-bytes"))
                .hasMessageStartingWith("moemesh.kvcache.dram-bytes (MOEMESH_KVCACHE_DRAM_BYTES): " + dram + " bytes")
                .hasMessageContaining("the JVM's max heap of " + heap + " bytes")
                .hasMessageContaining("Lower dram-bytes to at most")
                .hasMessageEndingWith("raise the heap (-Xmx, or -XX:MaxRAMPercentage and the container's memory limit) "
                        + "to at least " + neededHeap);
    }
}
