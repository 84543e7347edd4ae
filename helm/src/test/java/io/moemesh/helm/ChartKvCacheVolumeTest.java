package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.kubernetes.client.openapi.models.V1ConfigMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The kvcache SSD volume holds the tier's segment files, and those hold dead space besides {@code kvcache.ssdBytes}
 * of live blocks: compaction rewrites a sealed segment only once less than the compaction live fraction of it is
 * live (kvcache-service SsdTier), so the sealed segments may hold ssdBytes ÷ that fraction. The chart refuses an
 * ssdBytes above {@code kvcache.persistence.size} × the fraction, naming both values; at the limit it renders.
 */
class ChartKvCacheVolumeTest {

    private static final Chart.ValueSet DEFAULTS = Chart.valueSets().getFirst();

    /** Settings of the volume and the fraction, and the largest ssdBytes they allow. */
    static Stream<Arguments> volumes() {
        return Stream.of(
                volume(Map.of(), 53_687_091_200L), // the defaults: 100Gi × 0.5
                volume(Map.of("kvcache.persistence.size", "200G"), 100_000_000_000L),
                volume(Map.of("kvcache.persistence.size", "1.5Ti"), 824_633_720_832L),
                volume(Map.of("kvcache.persistence.size", "1000000000000"), 500_000_000_000L), // a number of bytes
                volume(Map.of("kvcache.env.MOEMESH_KVCACHE_COMPACTION_LIVE_FRACTION", "0.25"), 26_843_545_600L),
                volume(Map.of("kvcache.persistence.size", "500Gi",
                        "kvcache.env.MOEMESH_KVCACHE_COMPACTION_LIVE_FRACTION", "0.75"), 402_653_184_000L));
    }

    @ParameterizedTest(name = "{0} -> at most {1}")
    @MethodSource("volumes")
    void ssdBytesUpToTheVolumeTimesTheLiveFraction_renders(Map<String, String> overrides, long limit) {
        RenderedChart chart = RenderedChart.parse(Chart.template(DEFAULTS, with(overrides, limit)));
        assertThat(chart.one(V1ConfigMap.class, Chart.RELEASE + "-kvcache").getData())
                .containsEntry("MOEMESH_KVCACHE_SSD_BYTES", Long.toString(limit));
    }

    @ParameterizedTest(name = "{0} -> at most {1}")
    @MethodSource("volumes")
    void ssdBytesOneByteOver_failsNamingSsdBytesAndTheVolumeSize(Map<String, String> overrides, long limit) {
        assertThatThrownBy(() -> Chart.template(DEFAULTS, with(overrides, limit + 1)))
                .hasMessageContaining("kvcache.ssdBytes (" + (limit + 1) + ")")
                .hasMessageContaining("kvcache.persistence.size")
                .hasMessageContaining("= " + limit + " bytes");
    }

    /** Compaction off (fraction 0: no volume is enough, the service's choice) and no kvcache: nothing to check. */
    static Stream<Map<String, String>> unchecked() {
        return Stream.of(
                Map.of("kvcache.env.MOEMESH_KVCACHE_COMPACTION_LIVE_FRACTION", "0",
                        "kvcache.ssdBytes", "1000000000000"),
                Map.of("kvcache.enabled", "false", "kvcache.ssdBytes", "1000000000000"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("unchecked")
    void compactionOffOrNoKvCache_isNotChecked(Map<String, String> overrides) {
        assertThat(Chart.template(DEFAULTS, overrides)).contains("kind: Deployment");
    }

    @Test
    void defaultSsdBytes_leavesHeadroomOnTheDefaultVolume() {
        Map<String, Object> values = Chart.values(DEFAULTS);
        long ssdBytes = ((Number) Chart.value(values, "kvcache.ssdBytes")).longValue();
        assertThat(Chart.value(values, "kvcache.persistence.size")).isEqualTo("100Gi");
        // dead space up to ssdBytes ÷ 0.5, then at least 10 GB for the segment being written and what is written
        // between compactions
        assertThat(100L * (1L << 30) - 2 * ssdBytes).isGreaterThanOrEqualTo(10_000_000_000L);
    }

    private static Arguments volume(Map<String, String> overrides, long limit) {
        return Arguments.of(overrides, limit);
    }

    private static Map<String, String> with(Map<String, String> overrides, long ssdBytes) {
        Map<String, String> all = new LinkedHashMap<>(overrides);
        all.put("kvcache.ssdBytes", Long.toString(ssdBytes));
        return all;
    }
}
