package io.moemesh.gateway.routing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/** Exponential backoff with equal jitter: each wait in [d/2, d], d doubling from the initial bound up to the cap. */
class BackoffTest {

    @ParameterizedTest(name = "random {0}")
    @ValueSource(doubles = {0.0, 0.5, 0.999999})
    void waits_doubleUpToTheCap_withinHalfToFullBound(double random) {
        Backoff b = new Backoff(Duration.ofMillis(100), Duration.ofMillis(1000), () -> random);
        long[] bounds = {100, 200, 400, 800, 1000, 1000};
        for (long bound : bounds) {
            long wait = b.next().toMillis();
            assertThat(wait).as("bound %d", bound).isBetween(bound / 2, bound);
        }
        assertThat(b.failures()).isEqualTo(bounds.length);
        b.reset();
        assertThat(b.next().toMillis()).isBetween(50L, 100L);
    }

    @Test
    void manyFailures_neverOverflowPastTheCap() {
        Backoff b = new Backoff(Duration.ofMillis(1), Duration.ofSeconds(10), () -> 0.999);
        for (int i = 0; i < 200; i++) {
            assertThat(b.next()).isLessThanOrEqualTo(Duration.ofSeconds(10));
        }
    }

    @Test
    void capBelowInitial_refused() {
        assertThatThrownBy(() -> new Backoff(Duration.ofSeconds(2), Duration.ofSeconds(1), () -> 0))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("0 < initial <= max");
    }
}
