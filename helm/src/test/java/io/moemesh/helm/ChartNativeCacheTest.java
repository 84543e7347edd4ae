package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;

import io.kubernetes.client.openapi.models.V1Container;
import io.kubernetes.client.openapi.models.V1Volume;
import io.kubernetes.client.openapi.models.V1VolumeMount;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Where the services unpack native libraries (JavaCPP/OpenBLAS) and then load them from: the chart names the
 * directory to every service ({@code -Dorg.bytedeco.javacpp.cachedir} in JDK_JAVA_OPTIONS, and the gateway's and
 * expert-service's native-cache-dir settings), since the root filesystem is read-only and the images' user's home
 * (/app) with it. It must be a directory the service creates inside an emptyDir, not the emptyDir's mount point,
 * which the kubelet makes world-writable, and not under /tmp.
 */
class ChartNativeCacheTest {
    private static final Pattern JAVACPP_CACHE = Pattern.compile("-Dorg\\.bytedeco\\.javacpp\\.cachedir=(\\S+)");
    private static final List<String> NATIVE_CACHE_SETTINGS =
            List.of("MOEMESH_GATEWAY_NATIVE_CACHE_DIR", "MOEMESH_EXPERT_NATIVE_CACHE_DIR");

    static Stream<Chart.ValueSet> valueSets() {
        return Chart.valueSets().stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void nativeCacheDir_isADirectoryTheServiceCreatesInsideAnEmptyDir_notItsWorldWritableMountPoint_norTmp(
            Chart.ValueSet set) {
        RenderedChart chart = Chart.render(set);
        for (RenderedChart.Workload w : chart.workloads()) {
            Set<String> emptyDirs = w.template().getSpec().getVolumes().stream()
                    .filter(v -> v.getEmptyDir() != null).map(V1Volume::getName).collect(Collectors.toSet());
            for (V1Container c : w.template().getSpec().getContainers()) {
                String what = w.name() + "/" + c.getName();
                Map<String, String> env = ContainerEnvironment.of(chart, c);
                List<String> dirs = new ArrayList<>();
                Matcher javacpp = JAVACPP_CACHE.matcher(env.getOrDefault("JDK_JAVA_OPTIONS", ""));
                assertThat(javacpp.find()).as("%s sets the JavaCPP cache dir", what).isTrue();
                dirs.add(javacpp.group(1));
                NATIVE_CACHE_SETTINGS.stream().filter(env::containsKey).map(env::get).forEach(dirs::add);
                List<String> emptyDirMounts = c.getVolumeMounts().stream()
                        .filter(m -> emptyDirs.contains(m.getName())).map(V1VolumeMount::getMountPath).toList();
                for (String dir : dirs) {
                    assertThat(dir).as("%s native cache dir", what).isEqualTo(dirs.getFirst())
                            .doesNotStartWith("/tmp/").isNotEqualTo("/tmp");
                    assertThat(emptyDirMounts).as("%s: %s lies strictly inside an emptyDir mount", what, dir)
                            .anySatisfy(mount -> assertThat(dir).startsWith(mount + "/"))
                            .noneSatisfy(mount -> assertThat(dir).isEqualTo(mount));
                }
            }
        }
    }
}
