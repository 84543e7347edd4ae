package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class RestartBackoffTest {
    private static final long S = 1_000_000_000L;
    private final RestartBackoff backoff = new RestartBackoff(Duration.ofSeconds(1), Duration.ofSeconds(30),
            Duration.ofSeconds(60));

    @ParameterizedTest(name = "exit #{0} in a row waits {1} s")
    @CsvSource({"1, 0", "2, 1", "3, 2", "4, 4", "5, 8", "6, 16", "7, 30", "8, 30", "40, 30"})
    void crashLoop_waitDoublesFromZeroUpToTheCap(int exits, long expectedWaitSeconds) {
        long now = 1000 * S;
        long wait = 0;
        for (int i = 1; i <= exits; i++) {
            backoff.running("expert-0", i, now);
            now += S; // ran one second, far below the reset threshold
            wait = backoff.exited("expert-0", i, now) - now;
        }
        assertThat(wait).isEqualTo(expectedWaitSeconds * S);
    }

    @Test
    void aLongRun_forgetsEarlierCrashes() {
        long now = 0;
        for (int pid = 1; pid <= 5; pid++) {
            backoff.running("gateway", pid, now);
            now += S;
            backoff.exited("gateway", pid, now);
        }
        assertThat(backoff.crashes("gateway")).isEqualTo(5);
        backoff.running("gateway", 6, now);
        now += 61 * S;
        assertThat(backoff.exited("gateway", 6, now)).as("restart at once after a minute of running").isEqualTo(now);
        assertThat(backoff.crashes("gateway")).isEqualTo(1);
    }

    @Test
    void theSameExitAskedAgain_keepsItsInstant_andServicesAreIndependent() {
        backoff.running("a", 1, 0);
        backoff.exited("a", 1, S);
        backoff.running("a", 2, S);
        long first = backoff.exited("a", 2, 2 * S);
        assertThat(backoff.exited("a", 2, 3 * S)).isEqualTo(first).isEqualTo(3 * S);
        assertThat(backoff.exited("b", 7, 5 * S)).as("another service's first exit").isEqualTo(5 * S);
    }

    /**
     * A restart that did not take (the process could not be started, or could not be recorded and was killed) is
     * tried again after the doubled wait, not at the next 200 ms poll: a full disk must not start a JVM five times a
     * second.
     */
    @Test
    void failedStart_waitsAsOneMoreExitInARow() {
        backoff.running("expert-0", 1, 0);
        assertThat(backoff.exited("expert-0", 1, S)).as("first exit: at once").isEqualTo(S);
        assertThat(backoff.failedStart("expert-0", S)).isEqualTo(2 * S);
        assertThat(backoff.exited("expert-0", 1, S + 1)).as("the same exit asked again").isEqualTo(2 * S);
        assertThat(backoff.failedStart("expert-0", 2 * S)).isEqualTo(4 * S);
        assertThat(backoff.crashes("expert-0")).isEqualTo(3);
    }

    @Test
    void badSettings_areRefused() {
        assertThatThrownBy(() -> new RestartBackoff(Duration.ZERO, Duration.ofSeconds(1), Duration.ZERO))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("initial");
        assertThatThrownBy(() -> new RestartBackoff(Duration.ofSeconds(2), Duration.ofSeconds(1), Duration.ZERO))
                .isInstanceOf(IllegalArgumentException.class);
    }
}
