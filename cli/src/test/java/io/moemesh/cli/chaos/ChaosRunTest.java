package io.moemesh.cli.chaos;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The kill loop's pause (no mesh: the rule only). */
class ChaosRunTest {

    /**
     * Until the next kill or the end of the kills, whichever is first, plus 1 ms; when the end passed since the
     * loop's check (a busy host, a GC pause), 1 ms, never a negative sleep, which threw after the whole run and lost
     * its report.
     */
    @ParameterizedTest(name = "next kill in {0} ms, kills end in {1} ms -> sleep {2} ms")
    @CsvSource({
        "2000, 10000, 2001",
        "2000,   500,  501",
        "2000,    -5,    1",
        "2000, -3000,    1",
        "   0,  1000,    1",
    })
    void pause_untilTheNextKillOrTheEnd_neverNegative(long nextKillInMs, long killsEndInMs, long expectedMs) {
        long now = System.nanoTime();
        long pause = ChaosRun.pauseMillis(now + nextKillInMs * 1_000_000, now + killsEndInMs * 1_000_000, now);
        assertThat(pause).isEqualTo(expectedMs);
    }
}
