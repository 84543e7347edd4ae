package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;

import io.kubernetes.client.util.Yaml;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A changed pod template is a rollout: every pod of the workload is replaced (an expert pod reloads its experts, a
 * kvcache pod writes out its DRAM tier and rescans its SSD tier). So a pod template changes with the settings its
 * pods run, never with the chart's own version: no version label on it, and a config checksum of the settings alone.
 */
class ChartPodTemplateStabilityTest {

    static List<Chart.ValueSet> valueSets() {
        return Chart.valueSets();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void podTemplates_carryNeitherTheChartNorTheAppVersionLabel(Chart.ValueSet set) {
        for (RenderedChart.Workload w : Chart.render(set).workloads()) {
            assertThat(w.template().getMetadata().getLabels()).as("%s pod template labels", w.name())
                    .doesNotContainKeys("helm.sh/chart", "app.kubernetes.io/version")
                    .containsKeys("app.kubernetes.io/name", "app.kubernetes.io/instance",
                            "app.kubernetes.io/component");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void chartVersionBump_leavesEveryPodTemplateAsItWas_whileAChangedSettingStillRollsItsPods(Chart.ValueSet set,
                                                                                             @TempDir Path work)
            throws IOException {
        Path bumped = Chart.copy(work);
        Path chartYaml = bumped.resolve("Chart.yaml");
        String version = "version: " + ChartVersionTest.version();
        assertThat(Files.readString(chartYaml)).contains(version);
        Files.writeString(chartYaml, Files.readString(chartYaml).replace(version, "version: 99.0.0"));

        RenderedChart before = Chart.render(set);
        RenderedChart after = RenderedChart.parse(Chart.template(bumped, set, Map.of()));
        Map<String, RenderedChart.Workload> afterByName = after.workloads().stream()
                .collect(Collectors.toMap(RenderedChart.Workload::name, Function.identity()));
        assertThat(afterByName.keySet()).containsExactlyInAnyOrderElementsOf(
                before.workloads().stream().map(RenderedChart.Workload::name).toList());
        for (RenderedChart.Workload w : before.workloads()) {
            assertThat(Yaml.dump(afterByName.get(w.name()).template())).as("%s pod template", w.name())
                    .isEqualTo(Yaml.dump(w.template()));
        }
        // The bump took effect: the objects themselves carry the new chart label.
        assertThat(after.objects().stream().map(o -> RenderedChart.meta(o).getLabels().get("helm.sh/chart")))
                .containsOnly("moemesh-99.0.0");

        // A setting of every component (each reads the model) still changes its pods' config checksum, so a changed
        // setting still rolls them.
        RenderedChart changed = RenderedChart.parse(Chart.template(set, Map.of("model.path", "mixtral-8x22b")));
        Map<String, String> changedChecksums = changed.workloads().stream().collect(Collectors.toMap(
                RenderedChart.Workload::name, ChartPodTemplateStabilityTest::checksum));
        for (RenderedChart.Workload w : before.workloads()) {
            assertThat(changedChecksums.get(w.name())).as("%s checksum/config after a settings change", w.name())
                    .isNotEqualTo(checksum(w));
        }
    }

    private static String checksum(RenderedChart.Workload w) {
        return w.template().getMetadata().getAnnotations().get("checksum/config");
    }
}
