package io.moemesh.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Options of the mesh commands refused before anything starts or stops: exit 2 and one line naming the option. */
class MeshCommandOptionsTest {
    @TempDir
    Path state;

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource(delimiter = '|', value = {
        "demo | --max-tokens | 0  | --max-tokens must be >= 1, got 0",
        "demo | --max-tokens | -5 | --max-tokens must be >= 1, got -5",
        "down | --grace      | -1 | --grace must be >= 0 seconds, got -1",
    })
    void outOfRangeOption_exits2NamingIt_beforeAnyServiceStartsOrStops(String command, String option, String value,
                                                                      String message) {
        Path dir = state.resolve("mesh");
        List<String> args = new ArrayList<>(List.of(command, option, value, "--state-dir", dir.toString()));
        CliRun run = CliRun.of(args.toArray(String[]::new));
        assertThat(run.exitCode()).as(run.err()).isEqualTo(2);
        assertThat(run.err()).contains("moemesh " + command + ": " + message);
        assertThat(dir).as("nothing was started: no state directory").doesNotExist();
    }

    /** The router and the kvcache-service size their own heaps: --heap must not claim them. */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"up", "demo", "chaos"})
    void heapHelp_namesTheJvmsItSizes(String command) {
        CliRun help = CliRun.of(command, "--help");
        String text = help.out().replaceAll("\\s+", " ");
        assertThat(text).doesNotContain("-Xmx of every service JVM")
                .contains("-Xmx of the gateway's and every expert-service's JVM")
                .contains("the router-service gets 256m, the kvcache-service its DRAM tier + 256 MiB");
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"demo", "chaos"})
    void commandsThatCallTheirOwnMeshsGateway_takeAnApiKey(String command) {
        assertThat(CliRun.of(command, "--help").out()).contains("--api-key=KEY");
    }
}
