package io.moemesh.e2e;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.golden.TestModels;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * {@code ./moemesh bench kvcache-ttft} as a user runs it, at tiny size: a real mesh with the kvcache-service, each
 * prompt recomputed on the first gateway and restored on a fresh one after the service restarted; the report's
 * shape and the restore's cached tokens, never its timings.
 */
class BenchKvCacheTtftTest {
    private static final Path RUNS = TestMeshes.stateDir("bench-kvcache-ttft-runs");
    private static final Path WORK = TestMeshes.stateDir("bench-kvcache-ttft-work");

    @Test
    void kvcacheTtft_printsOneRowPerLength_restoredFromTheService_withAPositiveRatio() throws Exception {
        LauncherRun r = LauncherRun.of(RUNS, Duration.ofMinutes(8), "bench", "kvcache-ttft", "--model-dir",
                TestModels.dir(TestModels.MIXTRAL).toString(), "--lengths", "40,100", "--runs", "1", "--warmup", "1",
                "--heap", "512m", "--work-dir", WORK.toString());
        assertThat(r.exit()).as("exit code; stderr:%n%s", r.err()).isZero();
        assertThat(r.out()).contains("gateway + 1 expert-service + kvcache-service; 1 runs per length",
                "kvcache-service restarted; once it was SERVING and the fresh gateway warmed up, page cache dropped");
        List<String[]> rows = r.out().lines().filter(l -> l.matches("\\| \\d+ \\|.*")).map(l -> l.split("\\|"))
                .toList();
        assertThat(rows).extracting(c -> c[1].strip()).containsExactly("40", "100");
        // every full block before the last token comes from the service: 2 of 40 tokens' blocks, 6 of 100's
        assertThat(rows).extracting(c -> Integer.parseInt(c[6].strip())).containsExactly(32, 96);
        for (String[] row : rows) {
            assertThat(Double.parseDouble(row[7].strip())).as("restored ÷ recomputed at %s", row[1]).isPositive();
        }
        assertThat(r.out()).containsPattern("Restored ÷ recomputed at 100 tokens: [0-9.]+ \\(goal <= 0.25 at 2000\\): "
                + "(met|missed)");
    }
}
