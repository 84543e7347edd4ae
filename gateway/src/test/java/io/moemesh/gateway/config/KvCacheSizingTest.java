package io.moemesh.gateway.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.service.settings.SettingRefusedException;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.boot.context.properties.bind.BindException;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;

/** The paged KV cache's size: configured, or a share of the heap, and never more than the heap can hold. */
class KvCacheSizingTest {
    private static final long MIB = 1L << 20;
    private static final long GIB = 1L << 30;

    private static GatewayProperties bind(Map<String, String> extra) {
        Map<String, String> m = new java.util.HashMap<>(Map.of("moemesh.gateway.model-dir", "/models/x"));
        m.putAll(extra);
        return new Binder(new MapConfigurationPropertySource(m)).bindOrCreate("moemesh.gateway", GatewayProperties.class);
    }

    @Test
    void byDefault_theCacheIsSizedFromHalfTheHeap() {
        GatewayProperties p = bind(Map.of());

        assertThat(p.kvCacheTokens()).isZero();
        assertThat(p.kvCacheHeapFraction()).isEqualTo(0.5);
    }

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource({
            "kv-cache-tokens, -1, 'kv-cache-tokens 0 (sized from the heap) or ≥ 16'",
            "kv-cache-tokens, 8, 'kv-cache-tokens 0 (sized from the heap) or ≥ 16'",
            "kv-cache-heap-fraction, 0.9, 'moemesh.gateway.kv-cache-heap-fraction must be in (0, 0.8], got 0.9'",
            "kv-cache-heap-fraction, 0, 'moemesh.gateway.kv-cache-heap-fraction must be in (0, 0.8], got 0.0'"})
    void badSettings_refusedWhenBound_namingThem(String key, String value, String message) {
        assertThatThrownBy(() -> bind(Map.of("moemesh.gateway." + key, value)))
                .isInstanceOf(BindException.class).rootCause().isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(message);
    }

    /** Synth model M: 8 layers, 4 KV heads of 64 → 256 floats of K and as many of V per position: 16 KiB. */
    @ParameterizedTest(name = "heap {0} MiB, fraction {1} → {2} positions")
    @CsvSource({
            "1024, 0.5, 32768",     // moemesh up's default heap: half of it, 512 MiB
            "4096, 0.5, 65536",     // capped at 65,536 positions (1 GiB of 2 GiB allowed)
            "1024, 0.25, 16384",
            "100, 0.5, 3200",       // 50 MiB / 16 KiB = 3,200, a whole number of 16-position blocks
            "99, 0.33, 2080"})      // 32.67 MiB / 16 KiB = 2,090.9 positions, rounded down to whole blocks
    void fromTheHeap_aShareOfIt_inWholeBlocks_atMost65536(long heapMib, double fraction, int tokens) {
        KvCacheSizing s = KvCacheSizing.of(0, fraction, 16, 8, 256, heapMib * MIB);

        assertThat(s.tokens()).isEqualTo(tokens);
        assertThat(s.tokens() % 16).isZero();
        assertThat(s.bytes()).isEqualTo(tokens * 16L * 1024).isLessThanOrEqualTo((long) (fraction * heapMib * MIB));
        assertThat(s.fromHeap()).isTrue();
    }

    @ParameterizedTest(name = "{0} positions configured → {1}")
    @CsvSource({"16, 16", "17, 32", "1000, 1008", "32768, 32768"})
    void configured_roundedUpToWholeBlocks_whenItFits(int configured, int tokens) {
        KvCacheSizing s = KvCacheSizing.of(configured, 0.5, 16, 8, 256, GIB);

        assertThat(s.tokens()).isEqualTo(tokens);
        assertThat(s.fromHeap()).isFalse();
    }

    @ParameterizedTest(name = "{0} positions on a heap of {1} MiB")
    @CsvSource({"65536, 1024", "52432, 1024"}) // 1 GiB, and 819.25 MiB: just over 80% of 1 GiB
    void configured_largerThan80PercentOfTheHeap_refusedAtStartup_namingTheSettingAndWhatItNeeds(int configured,
                                                                                               long heapMib) {
        assertThatThrownBy(() -> KvCacheSizing.of(configured, 0.5, 16, 8, 256, heapMib * MIB))
                .isInstanceOfSatisfying(SettingRefusedException.class,
                        e -> assertThat(e.setting()).isEqualTo("moemesh.gateway.kv-cache-tokens"))
                .hasMessageStartingWith("moemesh.gateway.kv-cache-tokens=" + configured + " needs ")
                .hasMessageContaining("8 layers x 256 floats of K and as many of V per position, float32: 16.0 KiB per position")
                .hasMessageContaining("more than 80% of this JVM's heap (1.0 GiB, -Xmx)")
                .hasMessageContaining("moemesh up --heap");
    }

    @ParameterizedTest(name = "fraction {0}")
    @CsvSource({"0", "-0.1", "0.81", "1", "NaN"})
    void heapFractionOutsideItsRange_refused_namingIt(double fraction) {
        assertThatThrownBy(() -> KvCacheSizing.of(0, fraction, 16, 8, 256, GIB))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("moemesh.gateway.kv-cache-heap-fraction must be in (0, 0.8], got " + fraction);
    }

    @ParameterizedTest(name = "heap of {0} KiB")
    @CsvSource({"256", "511"})
    void aHeapThatHoldsNoBlock_refused_namingTheHeap(long heapKib) {
        // One block of 16 positions is 256 KiB; half of a 511 KiB heap holds none.
        assertThatThrownBy(() -> KvCacheSizing.of(0, 0.5, 16, 8, 256, heapKib * 1024))
                .isInstanceOfSatisfying(SettingRefusedException.class,
                        e -> assertThat(e.setting()).isEqualTo("moemesh.gateway.kv-cache-heap-fraction"))
                .hasMessageContaining("holds no KV block of 16 positions (256.0 KiB)")
                .hasMessageContaining("moemesh up --heap");
    }

    @ParameterizedTest(name = "kv dim {0}")
    @CsvSource({"65536", "131072"})
    void fromTheHeap_neverMoreThanOneArrayPerLayerHolds(int kvDim) {
        KvCacheSizing s = KvCacheSizing.of(0, 0.8, 16, 1, kvDim, 4096 * GIB);

        assertThat((long) s.tokens() * kvDim).isLessThanOrEqualTo(Integer.MAX_VALUE - 8L);
    }

    @ParameterizedTest(name = "describe {0}")
    @CsvSource({"0, '32768 positions (2048 blocks of 16), 512.0 MiB, sized from the heap: 50% of 1.0 GiB'",
            "1024, '1024 positions (64 blocks of 16), 16.0 MiB, moemesh.gateway.kv-cache-tokens'"})
    void describe_saysTheSizeAndWhereItCameFrom(int configured, String text) {
        assertThat(KvCacheSizing.of(configured, 0.5, 16, 8, 256, GIB).describe(16, GIB)).isEqualTo(text);
    }
}
