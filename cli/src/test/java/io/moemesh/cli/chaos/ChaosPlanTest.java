package io.moemesh.cli.chaos;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.cli.CliRun;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The chaos options are checked before a mesh starts: options that leave no time for a kill are bad input. */
class ChaosPlanTest {
    @TempDir
    Path tmp;

    private static ChaosPlan plan(int durationSeconds, int warmupSeconds) {
        return new ChaosPlan(8, Duration.ofSeconds(durationSeconds), Duration.ofSeconds(15),
                Duration.ofSeconds(warmupSeconds), 0, 1, 32, Duration.ofMinutes(3));
    }

    @ParameterizedTest(name = "--duration {0} --warmup {1}")
    @CsvSource({"5, 10", "10, 10", "1, 1", "30, 60"})
    void durationNotLongerThanTheWarmup_isRefusedNamingBothOptions(int duration, int warmup) {
        assertThatThrownBy(() -> plan(duration, warmup)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("--duration (" + duration + " s) must exceed --warmup (" + warmup + " s): the first kill "
                        + "comes after the warm-up, and a run needs at least one");
    }

    @ParameterizedTest(name = "--duration {0} --warmup {1}")
    @CsvSource({"11, 10", "120, 10", "1, 0", "5, 0"})
    void durationLongerThanTheWarmup_leavesTimeForAKill(int duration, int warmup) {
        assertThat(plan(duration, warmup).duration()).isEqualTo(Duration.ofSeconds(duration));
    }

    @Test
    void chaosCommand_withADurationWithinTheDefaultWarmup_exitsWith2BeforeStartingAMesh() {
        // a model directory that does not exist: were the options not checked first, the command would still stop
        // before starting anything, with another message
        CliRun run = CliRun.of("chaos", "--duration", "5", "--model", tmp.resolve("no-model").toString(),
                "--state-dir", tmp.resolve("state").toString());
        assertThat(run.exitCode()).isEqualTo(2);
        assertThat(run.err().strip()).isEqualTo("moemesh chaos: --duration (5 s) must exceed --warmup (10 s): the "
                + "first kill comes after the warm-up, and a run needs at least one");
        assertThat(tmp.resolve("state")).doesNotExist();
    }
}
