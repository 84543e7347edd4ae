package io.moemesh.e2e;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.golden.TestModels;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@code ./moemesh bench prefetch} as a user runs it, at tiny size: two real meshes (prefetch off, then on) whose
 * expert services hold half their assignment, and one table of the two side by side.
 */
class BenchPrefetchTest {
    private static final Path RUNS = TestMeshes.stateDir("bench-prefetch-runs");
    private static final Path WORK = TestMeshes.stateDir("bench-prefetch-work");

    @Test
    void prefetch_printsOffAndOnRows_withMissesHintsAndRecall_andTheShareRemoved() throws Exception {
        LauncherRun r = LauncherRun.of(RUNS, Duration.ofMinutes(8), "bench", "prefetch", "--model-dir",
                TestModels.dir(TestModels.MIXTRAL).toString(), "--sequences", "2", "--tokens", "4", "--work-dir",
                WORK.toString());
        assertThat(r.exit()).as("exit code; stderr:%n%s", r.err()).isZero();
        // mixtral-tiny: 4 layers x 8 experts, 16 per instance, half of them resident
        assertThat(r.out()).contains("16 experts assigned each", "(8 experts of ");
        List<String[]> rows = r.out().lines().filter(l -> l.startsWith("| off |") || l.startsWith("| on |"))
                .map(l -> l.split("\\|")).toList();
        assertThat(rows).extracting(c -> c[1].strip()).containsExactly("off", "on");
        String[] off = rows.get(0);
        String[] on = rows.get(1);
        assertThat(Long.parseLong(off[2].strip())).as("misses without prefetch").isPositive();
        assertThat(Long.parseLong(off[4].strip())).as("no prefetch hits without prefetch").isZero();
        assertThat(Long.parseLong(off[6].strip())).as("no hints without prefetch").isZero();
        assertThat(Long.parseLong(on[6].strip())).as("hints with prefetch").isPositive();
        assertThat(Double.parseDouble(on[7].strip())).isPositive();
        assertThat(Double.parseDouble(on[8].strip())).as("recall").isBetween(0.0, 1.0);
        assertThat(r.out()).containsPattern("Misses removed by prefetch: -?[0-9.]+% \\(goal >= 80%\\): (met|missed)");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "--sequences 0 | --sequences must be at least 1, got 0",
            "--tokens 0 | --tokens must be at least 1, got 0",
            "--lookahead-top-k -1 | --lookahead-top-k must be",
            "--model-dir /nonexistent | --model-dir /nonexistent: no config.json there"})
    void badOptions_exitTwo_beforeStartingAnything(String option, String message) throws Exception {
        List<String> args = new ArrayList<>(List.of("bench", "prefetch", "--work-dir", WORK.toString()));
        args.addAll(List.of(option.split(" ")));
        LauncherRun r = LauncherRun.of(RUNS, Duration.ofMinutes(1), args.toArray(String[]::new));
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.err()).contains(message).doesNotContain("moemesh up: starting");
    }
}
