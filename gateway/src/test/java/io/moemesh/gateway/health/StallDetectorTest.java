package io.moemesh.gateway.health;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The engine stall rule on a fake engine and a fake clock: stalled = has work and no finished pass for too long. */
class StallDetectorTest {
    private static final long SECOND = 1_000_000_000L;

    private static final class FakeEngine implements StallDetector.Progress {
        boolean busy;
        long lastProgress;
        boolean alive = true;

        @Override
        public boolean busy() {
            return busy;
        }

        @Override
        public long lastProgressNanos() {
            return lastProgress;
        }

        @Override
        public boolean alive() {
            return alive;
        }
    }

    private final FakeEngine engine = new FakeEngine();
    private long now = 1_000 * SECOND;
    private final StallDetector detector = new StallDetector(engine, () -> now, Duration.ofSeconds(60),
            Duration.ofSeconds(180));

    @ParameterizedTest(name = "busy={0}, {1} s since the last pass, thread alive={2}: ready={3}, live={4}")
    @CsvSource({
            "false, 3600, true,  true,  true",   // idle for an hour is not a stall
            "true,     0, true,  true,  true",
            "true,    60, true,  true,  true",   // at the limit, not past it
            "true,    61, true,  false, true",   // past engine-stall: not ready
            "true,   180, true,  false, true",
            "true,   181, true,  false, false",  // past engine-wedged: not live
            "false,    0, false, false, false",  // the engine thread died: neither
    })
    void verdict(boolean busy, long secondsSinceProgress, boolean alive, boolean ready, boolean live) {
        engine.busy = busy;
        engine.alive = alive;
        engine.lastProgress = now - secondsSinceProgress * SECOND;
        assertThat(detector.readiness().up()).isEqualTo(ready);
        assertThat(detector.liveness().up()).isEqualTo(live);
    }

    @Test
    void stalled_saysForHowLongAndTheLimit() {
        engine.busy = true;
        engine.lastProgress = now - 61 * SECOND - SECOND / 2;
        assertThat(detector.stalledNanos()).isEqualTo(61 * SECOND + SECOND / 2);
        assertThat(detector.readiness().reason())
                .isEqualTo("the engine has had work for 61.5 s without finishing a step (limit 60.0 s)");
        now += 120 * SECOND;
        engine.lastProgress = now;
        assertThat(detector.readiness().up()).isTrue();
        assertThat(detector.readiness().reason()).isEqualTo("the engine is making progress");
    }

    @Test
    void idle_stallsNothing() {
        engine.lastProgress = now - 3600 * SECOND;
        assertThat(detector.stalledNanos()).isZero();
        assertThat(detector.readiness().reason()).isEqualTo("the engine is idle");
    }

    @Test
    void deadThread_namedAsTheReason() {
        engine.alive = false;
        assertThat(detector.liveness().reason()).isEqualTo("the engine thread is not running");
    }

    @Test
    void wedgedShorterThanStall_refused() {
        assertThatThrownBy(() -> new StallDetector(engine, () -> now, Duration.ofSeconds(60), Duration.ofSeconds(30)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("need 0 < stall <= wedged");
    }
}
