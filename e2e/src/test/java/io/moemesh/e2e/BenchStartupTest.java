package io.moemesh.e2e;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.golden.TestModels;
import org.junit.jupiter.api.Test;

/**
 * A smoke test of {@code moemesh bench startup}: one run, the smallest mesh, one service timed alone. It checks only
 * that the command reports; the figures are measured on a quiet machine (docs/performance.md "Cold start").
 */
class BenchStartupTest {

    @Test
    void benchStartup_reportsUpAndTheServiceTimedAlone_withCpuSecondsAndTheLoadAverage() {
        CliRun run = CliRun.on(TestMeshes.stateDir("bench-startup"), "bench", "startup", "--runs", "1", "--aot", "off",
                "--experts", "1", "--services", "kvcache", "--heap", TestMeshes.HEAP,
                "--model", TestModels.dir("mixtral-tiny").toString());

        assertThat(run.exit()).as(run.err()).isZero();
        assertThat(run.out()).contains("| `./moemesh up` (1 experts, router, kvcache, gateway) |")
                .contains("| of which the launcher JVM (until it starts the services; CPU: all of it) |")
                .contains("| kvcache |")
                .contains("| | without | CPU s without: total (C2 / C1 / GC / main / other) |")
                .contains("load average (1, 5, 15 min): ");
        // every row has a CPU cell: total, then the five kinds; a service that used no CPU was not measured
        assertThat(run.out().lines().filter(l -> l.startsWith("| `./moemesh up`") || l.startsWith("| of which")
                || l.startsWith("| kvcache")))
                .hasSize(3).allMatch(l -> l.matches("\\| .+ \\| [0-9.]+ \\| [0-9.]+ \\([0-9.]+( / [0-9.]+){4}\\) \\|"))
                .noneMatch(l -> l.contains("| 0.0 ("));
    }

    @Test
    void benchStartup_refusesAnUnknownService_namingTheOption() {
        CliRun run = CliRun.on(TestMeshes.stateDir("bench-startup"), "bench", "startup", "--services", "nginx");

        assertThat(run.exit()).isNotZero();
        assertThat(run.err()).contains("--services").contains("nginx");
    }
}
