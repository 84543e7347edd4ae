package io.moemesh.e2e;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** {@code ./moemesh bench mesh} as a user runs it: a real no-op expert-service and the gateway's client. */
class BenchMeshTest {
    private static final Path RUNS = TestMeshes.stateDir("bench-mesh-runs");
    private static final Path WORK = TestMeshes.stateDir("bench-mesh-work");

    @Test
    void hop_printsARowPerTransportWireAndTokenCount_withTheGoalColumns_tcpAndBothDomainSocketModes() throws Exception {
        LauncherRun r = LauncherRun.of(RUNS, Duration.ofMinutes(4), "bench", "mesh", "--hidden", "256", "--tokens", "1,4",
                "--wire", "f32,bf16", "--transport", "plaintext,unix,unix-tls", "--iterations", "20", "--warmup", "20",
                "--work-dir", WORK.toString());
        assertThat(r.exit()).as("exit code; stderr:%n%s", r.err()).isZero();
        List<String> rows = r.out().lines().filter(l -> l.startsWith("| 256 |")).toList();
        assertThat(rows).hasSize(12);
        assertThat(rows).extracting(l -> l.split("\\|")[2].strip() + " " + l.split("\\|")[3].strip() + " "
                        + l.split("\\|")[12].strip())
                .containsExactly("1 f32 plaintext", "4 f32 plaintext", "1 bf16 plaintext", "4 bf16 plaintext",
                        "1 f32 unix", "4 f32 unix", "1 bf16 unix", "4 bf16 unix",
                        "1 f32 unix-tls", "4 f32 unix-tls", "1 bf16 unix-tls", "4 bf16 unix-tls");
        for (String row : rows) {
            String[] cells = row.split("\\|");
            // payload KiB: tokens × 256 × 4 (f32) or 2 (bf16) bytes
            int tokens = Integer.parseInt(cells[2].strip());
            int bytes = cells[3].strip().equals("f32") ? 4 : 2;
            assertThat(Double.parseDouble(cells[4].strip())).as(row).isEqualTo(tokens * 256.0 * bytes / 1024);
            assertThat(Double.parseDouble(cells[5].strip())).as("hop p50 of %s", row).isPositive();
            assertThat(Double.parseDouble(cells[7].strip())).as("empty RT p50 of %s", row).isPositive();
            assertThat(cells[10].strip()).isIn("yes", "no");
        }
        // each row warmed up until the JIT settled: at least HopBenchmark.MIN_WARMUP_ROUNDS (4) rounds of 20
        assertThat(r.out()).containsPattern("Each row warmed up in rounds of 20 round trips until the JIT settled .*: "
                + "([4-9]|[1-4][0-9])–([4-9]|[1-4][0-9]) rounds\\.");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "--wire f16 | --wire takes f32 or bf16, got f16",
            "--hidden 100 | --hidden must be a positive multiple of 128",
            "--tokens 0 | --tokens must be at least 1, got 0",
            "--transport tcp | --transport takes mtls, plaintext, unix, unix-inline or unix-tls, got tcp",
            "--skip-hop | --skip-hop leaves nothing to measure"})
    void badOptions_exitTwo_beforeStartingAnything(String option, String message) throws Exception {
        List<String> args = new java.util.ArrayList<>(List.of("bench", "mesh", "--work-dir", WORK.toString()));
        args.addAll(List.of(option.split(" ")));
        LauncherRun r = LauncherRun.of(RUNS, Duration.ofMinutes(1), args.toArray(String[]::new));
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.err()).contains(message).doesNotContain("starting a no-op expert-service");
    }
}
