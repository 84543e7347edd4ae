package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class ServiceJvmOptionsTest {

    @ParameterizedTest
    @ValueSource(strings = {MeshLauncher.ROUTER, MeshLauncher.KVCACHE})
    void startupFlags_delayC2_forTheServicesWithoutVectorKernels(String service) {
        assertThat(ServiceJvmOptions.startupFlags(service)).isEqualTo(ServiceJvmOptions.LATE_C2)
                .allMatch(f -> f.startsWith("-XX:Tier4"));
    }

    @ParameterizedTest
    @ValueSource(strings = {MeshLauncher.GATEWAY, "expert-0", "expert-7"})
    void startupFlags_keepHotSpotsCounts_whereKernelWarmUpNeedsThem(String service) {
        // MatMul.warmUp's fixed call count is sized for the default counts: later C2 would leave kernels in C1
        assertThat(ServiceJvmOptions.startupFlags(service)).isEmpty();
    }

    @ParameterizedTest
    @CsvSource({"router-service, 2", "kvcache-service, 2", "gateway, 0", "expert-service, 0"})
    void dockerfile_startsAndTrainsEachImage_withTheLaunchersStartupFlags(String target, int expected)
            throws IOException {
        String dockerfile = Files.readString(Path.of("..", "docker", "Dockerfile"));
        int from = dockerfile.indexOf("FROM runtime AS " + target + "\n");
        int next = dockerfile.indexOf("\nFROM ", from + 1);
        String stage = dockerfile.substring(from, next < 0 ? dockerfile.length() : next);

        // once in the training run (the cache's profiles come from the same flags), once in the entry point
        for (String flag : ServiceJvmOptions.LATE_C2) {
            assertThat(stage.split(java.util.regex.Pattern.quote(flag), -1)).as(target + " " + flag)
                    .hasSize(expected + 1);
        }
        assertThat(List.of(stage)).allMatch(s -> s.contains("ENTRYPOINT"));
    }
}
