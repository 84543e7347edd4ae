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
 * live (kvcache-service SsdTier), so the sealed segments may hold ssdBytes ÷ that fraction; a stop then demotes the
 * whole DRAM tier ({@code kvcache.dramBytes}) to SSD (ServedModels.close), and the segment being written comes on
 * top. The chart refuses an ssdBytes above ({@code kvcache.persistence.size} − dramBytes − one segment) × the
 * fraction, naming the values; at the limit it renders.
 */
class ChartKvCacheVolumeTest {

    private static final Chart.ValueSet DEFAULTS = Chart.valueSets().getFirst();

    /** The default DRAM tier (4 GiB) and one default segment (256 MiB), which the volume holds besides. */
    private static final long DRAM_AND_SEGMENT = 4_294_967_296L + 268_435_456L;

    /** Settings of the volume and the fraction, and the largest ssdBytes they allow. */
    static Stream<Arguments> volumes() {
        return Stream.of(
                volume(Map.of(), (107_374_182_400L - DRAM_AND_SEGMENT) / 2), // the defaults: 100Gi, 0.5
                volume(Map.of("kvcache.persistence.size", "200G"), (200_000_000_000L - DRAM_AND_SEGMENT) / 2),
                volume(Map.of("kvcache.persistence.size", "1.5Ti"), (1_649_267_441_664L - DRAM_AND_SEGMENT) / 2),
                // a number of bytes
                volume(Map.of("kvcache.persistence.size", "1000000000000"),
                        (1_000_000_000_000L - DRAM_AND_SEGMENT) / 2),
                volume(Map.of("kvcache.env.MOEMESH_KVCACHE_COMPACTION_LIVE_FRACTION", "0.25"),
                        (107_374_182_400L - DRAM_AND_SEGMENT) / 4),
                volume(Map.of("kvcache.persistence.size", "500Gi",
                        "kvcache.env.MOEMESH_KVCACHE_COMPACTION_LIVE_FRACTION", "0.75"),
                        (536_870_912_000L - DRAM_AND_SEGMENT) / 4 * 3),
                // a stop writes the whole DRAM tier to the volume: 16 GiB of DRAM leave less for ssdBytes
                volume(Map.of("kvcache.dramBytes", "17179869184", "kvcache.resources.limits.memory", "24Gi"),
                        (107_374_182_400L - 17_179_869_184L - 268_435_456L) / 2),
                volume(Map.of("kvcache.env.MOEMESH_KVCACHE_SEGMENT_BYTES", "4294967296"),
                        (107_374_182_400L - 4_294_967_296L - 4_294_967_296L) / 2));
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
                .hasMessageContaining("kvcache.dramBytes")
                .hasMessageContaining("= " + limit + " bytes")
                // raising the size of an installed release is no plain upgrade (ChartUpgradeLookupTest)
                .hasMessageContaining("docs/kubernetes.md, \"Changing the kvcache volume\"");
    }

    /**
     * Compaction off (fraction 0, or a compaction period of 0, which schedules none: no volume is enough, the
     * service's choice) and no kvcache: nothing to check.
     */
    static Stream<Map<String, String>> unchecked() {
        return Stream.of(
                Map.of("kvcache.env.MOEMESH_KVCACHE_COMPACTION_LIVE_FRACTION", "0",
                        "kvcache.ssdBytes", "1000000000000"),
                Map.of("kvcache.env.MOEMESH_KVCACHE_COMPACTION_PERIOD", "0s", "kvcache.ssdBytes", "1000000000000"),
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
        long dramBytes = ((Number) Chart.value(values, "kvcache.dramBytes")).longValue();
        assertThat(Chart.value(values, "kvcache.persistence.size")).isEqualTo("100Gi");
        // dead space up to ssdBytes ÷ 0.5, the DRAM tier a stop writes and the segment being written, then at least
        // 10 GB for what is written between compactions
        assertThat(100L * (1L << 30) - 2 * ssdBytes - dramBytes - 268_435_456L).isGreaterThanOrEqualTo(10_000_000_000L);
    }

    /**
     * The volume check counts one store, yet a change of kvBlockTokens, model.path or the fingerprint version opens a
     * new one beside the old: the chart has each pod delete at its start the stores no served model uses
     * (moemesh.kvcache.orphaned-stores), unless kvcache.orphanedStores says keep; kvcache.env may not set it.
     */
    @Test
    void storesAnEarlierBlockSizeLeft_areDeletedAtThePodsStart_unlessOrphanedStoresIsKeep() {
        assertThat(kvcacheSettings(Map.of())).containsEntry("MOEMESH_KVCACHE_ORPHANED_STORES", "delete");
        assertThat(kvcacheSettings(Map.of("kvcache.orphanedStores", "keep")))
                .containsEntry("MOEMESH_KVCACHE_ORPHANED_STORES", "keep");
        assertThatThrownBy(() -> Chart.template(DEFAULTS, Map.of("kvcache.orphanedStores", "remove")))
                .hasMessageContaining("orphanedStores");
        assertThatThrownBy(() -> Chart.template(DEFAULTS, Map.of("kvcache.env.MOEMESH_KVCACHE_ORPHANED_STORES", "keep")))
                .hasMessageContaining("kvcache.env.MOEMESH_KVCACHE_ORPHANED_STORES is set by the chart itself from "
                        + "kvcache.orphanedStores");
    }

    private static Map<String, String> kvcacheSettings(Map<String, String> overrides) {
        return RenderedChart.parse(Chart.template(DEFAULTS, overrides))
                .one(V1ConfigMap.class, Chart.RELEASE + "-kvcache").getData();
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
