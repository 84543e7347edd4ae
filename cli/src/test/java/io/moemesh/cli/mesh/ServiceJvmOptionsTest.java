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
    void startupFlags_delayC2_outsideTheServingPath_whereKernelWarmUpNeedsHotSpotsCounts(String service) {
        // MatMul.warmUp's fixed call count is sized for the default counts: the kernels' packages must keep them
        List<String> flags = ServiceJvmOptions.startupFlags(service);
        assertThat(flags).startsWith(ServiceJvmOptions.LATE_C2.toArray(String[]::new))
                .contains("-XX:CompileCommand=quiet",
                        "-XX:CompileCommand=CompileThresholdScaling,io.moemesh.*::*,0.1",
                        "-XX:CompileCommand=CompileThresholdScaling,jdk.incubator.vector.*::*,0.1",
                        "-XX:CompileCommand=CompileThresholdScaling,io.grpc.*::*,0.1");
        // 1/10 exactly undoes LATE_C2's 10x for the serving path
        assertThat(ServiceJvmOptions.LATE_C2).containsExactly("-XX:Tier4InvocationThreshold=50000",
                "-XX:Tier4MinInvocationThreshold=6000", "-XX:Tier4CompileThreshold=150000",
                "-XX:Tier4BackEdgeThreshold=400000");
    }

    @org.junit.jupiter.api.Test
    void servingPathCommands_areValidHotSpotCompileCommands_andTheImagesFileHoldsThem() throws Exception {
        List<String> cmd = new java.util.ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        cmd.addAll(ServiceJvmOptions.LATE_C2_OFF_SERVING_PATH);
        cmd.add("-version");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertThat(p.waitFor()).as(out).isZero();
        assertThat(out).as("quiet: no line per command").doesNotContain("CompileCommand:");

        assertThat(Files.readAllLines(Path.of("..", "docker", "jit-serving-path.compilecommands")))
                .isEqualTo(ServiceJvmOptions.SERVING_PATH_COMMANDS);
    }

    @ParameterizedTest
    @CsvSource({"router-service, 0", "kvcache-service, 0", "gateway, 2", "expert-service, 2"})
    void dockerfile_startsAndTrainsEachImage_withTheLaunchersStartupFlags(String target, int servingPathFile)
            throws IOException {
        String dockerfile = Files.readString(Path.of("..", "docker", "Dockerfile"));
        int from = dockerfile.indexOf("FROM runtime AS " + target + "\n");
        int next = dockerfile.indexOf("\nFROM ", from + 1);
        String stage = dockerfile.substring(from, next < 0 ? dockerfile.length() : next);

        // once in the training run (the cache's profiles come from the same flags), once in the entry point
        for (String flag : ServiceJvmOptions.LATE_C2) {
            assertThat(stage.split(java.util.regex.Pattern.quote(flag), -1)).as(target + " " + flag).hasSize(3);
        }
        // the serving path's commands come from a file in the image (the same lines as the launcher's flags)
        assertThat(stage.split(java.util.regex.Pattern.quote(
                "-XX:CompileCommandFile=jit-serving-path.compilecommands"), -1)).as(target).hasSize(servingPathFile + 1);
        assertThat(List.of(stage)).allMatch(s -> s.contains("ENTRYPOINT"));
    }

    @ParameterizedTest
    @ValueSource(ints = {0, -5})
    void timeout_belowOneSecond_isBadInput_beforeAnyJvmStarts(int seconds) {
        ServiceJvmOptions o = new ServiceJvmOptions("1g");
        o.timeoutSeconds = seconds;
        org.assertj.core.api.Assertions.assertThatThrownBy(o::timeout).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("--timeout must be at least 1 second, got " + seconds);
    }
}
