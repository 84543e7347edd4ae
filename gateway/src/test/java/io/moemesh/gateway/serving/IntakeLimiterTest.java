package io.moemesh.gateway.serving;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The intake limiter's rules not covered by {@link IntakeAndPromptLimitsTest}: construction refuses limits below
 * one, naming both properties; a small request's permit is a no-op however often it is closed; each large
 * request's permit frees exactly its own slot.
 */
class IntakeLimiterTest {

    @ParameterizedTest(name = "large above {0} bytes, {1} at once")
    @CsvSource({"0, 1", "1, 0", "-1, 4", "1024, -3"})
    void limitsBelowOne_refusedAtConstruction_namingBothProperties(long largeBytes, int maxLarge) {
        assertThatThrownBy(() -> new IntakeLimiter(largeBytes, maxLarge)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("large-request-bytes and max-concurrent-large-requests must be ≥ 1, got " + largeBytes
                        + " and " + maxLarge);
    }

    @ParameterizedTest(name = "{0} bytes → large: {1}")
    @CsvSource({"0, false", "1023, false", "1024, false", "1025, true", "9223372036854775807, true"})
    void large_meansStrictlyAboveTheThreshold(long bytes, boolean large) {
        assertThat(new IntakeLimiter(1024, 1).isLarge(bytes)).isEqualTo(large);
    }

    @Test
    void smallPermits_takeNoSlot_andClosingThemFreesNone() {
        IntakeLimiter l = new IntakeLimiter(1024, 1);
        IntakeLimiter.Permit large = l.admit(2048);
        for (int i = 0; i < 5; i++) {
            l.admit(10).close();
        }
        assertThat(l.largeInIntake()).as("small permits closed many times freed nothing").isEqualTo(1);
        assertThatThrownBy(() -> l.admit(2048)).isInstanceOf(OverloadedException.class);
        large.close();
        assertThat(l.largeInIntake()).isZero();
    }

    @Test
    void eachLargePermit_freesOnlyItsOwnSlot_evenWhenClosedRepeatedly() {
        IntakeLimiter l = new IntakeLimiter(1, 3);
        IntakeLimiter.Permit a = l.admit(2);
        IntakeLimiter.Permit b = l.admit(2);
        IntakeLimiter.Permit c = l.admit(2);
        assertThat(l.largeInIntake()).isEqualTo(3);
        for (int i = 0; i < 3; i++) {
            a.close();
        }
        assertThat(l.largeInIntake()).isEqualTo(2);
        IntakeLimiter.Permit d = l.admit(2);
        assertThatThrownBy(() -> l.admit(2)).isInstanceOf(OverloadedException.class);
        b.close();
        c.close();
        d.close();
        assertThat(l.largeInIntake()).isZero();
    }
}
