package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The kvcache-service's environment and heap under {@code up}: the DRAM tier lives on the heap, so -Xmx must follow
 * the tier the service binds, from whichever name of {@code moemesh.kvcache.dram-bytes} its relaxed binding takes.
 */
class KvCacheSettingsTest {

    private static final MeshSpec SPEC = new MeshSpec(Path.of("/models/m"), 1, 1, Path.of("/state"), "256m",
            Duration.ofSeconds(60), new MeshHome(Path.of("/home")), List.of());

    @ParameterizedTest(name = "[{0}] -> -Xmx{1}")
    @CsvSource(delimiter = '|', nullValues = "-", value = {
        "-                                                                      | 512m",
        "MOEMESH_KVCACHE_DRAM_BYTES=1073741824                                  | 1280m",
        "MOEMESH_KVCACHE_DRAMBYTES=1073741824                                   | 1280m",
        "moemesh_kvcache_dram_bytes=1073741824                                  | 1280m",
        // both set: Spring takes the name with the word's dash dropped, upper case, first
        "MOEMESH_KVCACHE_DRAM_BYTES=268435456,MOEMESH_KVCACHE_DRAMBYTES=1073741824 | 1280m",
        "moemesh_kvcache_drambytes=1073741824,MOEMESH_KVCACHE_DRAM_BYTES=268435456 | 512m",
    })
    void heap_isTheDramTierTheServiceBindsPlusHeadroom(String settings, String heap) {
        Map<String, String> env = KvCacheSettings.environment(environment(settings), SPEC, 9400, null);
        assertThat(KvCacheSettings.heap(env, List.of())).isEqualTo(heap);
    }

    @ParameterizedTest(name = "[{0}]")
    @CsvSource(delimiter = '|', value = {
        "MOEMESH_KVCACHE_DRAMBYTES=lots",
        "MOEMESH_KVCACHE_DRAMBYTES=0,MOEMESH_KVCACHE_DRAM_BYTES=1073741824",
    })
    void dramTierTheServiceBindsNotAPositiveNumber_isRefusedNamingTheVariable(String settings) {
        Map<String, String> env = KvCacheSettings.environment(environment(settings), SPEC, 9400, null);
        assertThatThrownBy(() -> KvCacheSettings.heap(env, List.of())).isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("MOEMESH_KVCACHE_DRAMBYTES must be a positive number of bytes");
    }

    /**
     * {@code up --jvm-option=-Dmoemesh.kvcache.dram-bytes=...} sizes the tier (Spring binds a system property before
     * the environment), so it sizes the heap too, under every spelling Spring accepts.
     */
    @ParameterizedTest(name = "[{0}] [{1}] -> -Xmx{2}")
    @CsvSource(delimiter = '|', nullValues = "-", value = {
        "-Dmoemesh.kvcache.dram-bytes=1073741824                    | -                                     | 1280m",
        "-Dmoemesh.kvcache.dramBytes=1073741824                     | -                                     | 1280m",
        "-Dmoemesh.kvcache.dram-bytes=1073741824                    | MOEMESH_KVCACHE_DRAMBYTES=268435456   | 1280m",
        "-Dmoemesh.kvcache.ssd-bytes=1073741824                     | MOEMESH_KVCACHE_DRAM_BYTES=536870912  | 768m",
        "-XX:ActiveProcessorCount=1                                 | -                                     | 512m",
    })
    void heap_followsTheDramTierOfADOption_beforeTheEnvironment(String jvmOption, String settings, String heap) {
        Map<String, String> env = KvCacheSettings.environment(environment(settings), SPEC, 9400, null);
        assertThat(KvCacheSettings.heap(env, List.of(jvmOption.strip()))).isEqualTo(heap);
    }

    @ParameterizedTest(name = "[{0}]")
    @CsvSource({"-Dmoemesh.kvcache.dram-bytes=lots", "-Dmoemesh.kvcache.dramBytes=0"})
    void dramTierOfADOptionNotAPositiveNumber_isRefusedNamingTheOption(String jvmOption) {
        Map<String, String> env = KvCacheSettings.environment(Map.of(), SPEC, 9400, null);
        assertThatThrownBy(() -> KvCacheSettings.heap(env, List.of(jvmOption))).isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith(jvmOption.substring(0, jvmOption.indexOf('=')) + " must be a positive number of bytes");
    }

    @ParameterizedTest(name = "[{0}]")
    @CsvSource(delimiter = '|', value = {
        "MOEMESH_KVCACHE_DRAMBYTES | moemesh.kvcache.dram-bytes",
        "moemesh_kvcache_ssd_bytes | moemesh.kvcache.ssd-bytes",
        "MOEMESH_KVCACHE_SSDBYTES  | moemesh.kvcache.ssd-bytes",
    })
    void callersCapacityUnderAnyName_isNotShadowedByTheDefault(String name, String property) {
        Map<String, String> env = KvCacheSettings.environment(Map.of(name, "1073741824"), SPEC, 9400, null);
        assertThat(SpringEnvironment.find(env, property)).contains(Map.entry(name, "1073741824"));
        assertThat(env.keySet()).filteredOn(k -> SpringEnvironment.names(property).contains(k)).containsExactly(name);
    }

    /** What the mesh decides (the SSD folder, the port) wins over a caller's setting under any of its names. */
    @ParameterizedTest(name = "[{0}]")
    @CsvSource(delimiter = '|', value = {
        "MOEMESH_KVCACHE_SSDDIR=/elsewhere       | moemesh.kvcache.ssd-dir    | /state/kvcache",
        "moemesh_kvcache_grpc_port=1             | moemesh.kvcache.grpc-port  | 9400",
        "MOEMESH_KVCACHE_MODELDIRS=/other/model  | moemesh.kvcache.model-dirs | /models/m",
    })
    void meshDecidedSettings_winOverTheCallersUnderAnyName(String settings, String property, String value) {
        Map<String, String> env = KvCacheSettings.environment(environment(settings), SPEC, 9400, null);
        assertThat(SpringEnvironment.value(env, property)).contains(value);
    }

    private static Map<String, String> environment(String pairs) {
        return pairs == null ? Map.of() : Arrays.stream(pairs.split(",")).map(p -> p.strip().split("=", 2))
                .collect(Collectors.toMap(p -> p[0], p -> p[1], (a, b) -> b, LinkedHashMap::new));
    }
}
