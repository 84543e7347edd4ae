package io.moemesh.cli.bench;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.cli.CliRun;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class PlannerBenchCommandTest {

    @Test
    void benchPlanner_printsOneRow_withThePlanTimeAndTheHeldOutScoresNextToRoundRobin() {
        CliRun r = CliRun.of("bench", "planner", "--experts", "16", "--layers", "3", "--instances", "4", "--top-k", "2",
                "--tokens", "200", "--repeats", "2");
        assertThat(r.exitCode()).as(r.err()).isZero();
        assertThat(r.out()).contains("5 slots per instance per layer, median of 2");
        assertThat(r.out().lines().filter(l -> l.startsWith("| affinity |")).findFirst().orElseThrow())
                .matches("\\| affinity \\| 16 × 3 × 4 \\| [\\d.]+( \\([\\d.]+–[\\d.]+\\))? \\| [\\d.]+ \\([\\d.]+\\) "
                        + "\\| [\\d.]+ \\([\\d.]+\\) \\| [\\d.]+ \\([\\d.]+\\) \\|");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "--repeats 0 | --repeats must be at least 1, got 0",
            "--instances 0 | --instances must be at least 1, got 0",
            "--top-k 0 | --top-k must be between 1 and --experts (256), got 0",
            "--planner best | --planner must be one of affinity, affinity-stats, round-robin, got \"best\""})
    void badOptions_exitTwo_withOneLineNamingTheOption(String args, String message) {
        CliRun r = CliRun.of(("bench planner " + args).split(" "));
        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.err().strip()).isEqualTo("moemesh planner: " + message);
    }
}
