package io.moemesh.cli.bench.serve;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import java.util.List;
import org.junit.jupiter.api.Test;

class ArrivalScheduleTest {

    @Test
    void poisson_sameSeedSameArrivals_otherSeedOtherArrivals() {
        double[] a = ArrivalSchedule.poisson(200, 4.0, 7);

        assertThat(ArrivalSchedule.poisson(200, 4.0, 7)).containsExactly(a);
        assertThat(ArrivalSchedule.poisson(200, 4.0, 8)).isNotEqualTo(a);
    }

    @Test
    void poisson_isNonDecreasing_andRescaledToEndAtNOverRate_asVllm() {
        double[] a = ArrivalSchedule.poisson(500, 2.5, 1);

        for (int i = 1; i < a.length; i++) {
            assertThat(a[i]).isGreaterThanOrEqualTo(a[i - 1]);
        }
        assertThat(a[0]).isPositive();
        assertThat(a[a.length - 1]).isCloseTo(500 / 2.5, within(1e-9));
    }

    @Test
    void poisson_gapsAreExponential_meanAndCoefficientOfVariationNearOne() {
        double[] a = ArrivalSchedule.poisson(20_000, 10.0, 3);
        double sum = 0;
        double sumSq = 0;
        double prev = 0;
        for (double t : a) {
            double gap = t - prev;
            sum += gap;
            sumSq += gap * gap;
            prev = t;
        }
        double mean = sum / a.length;
        double sd = Math.sqrt(sumSq / a.length - mean * mean);
        assertThat(mean).isCloseTo(0.1, within(1e-9)); // exact after rescaling
        assertThat(sd / mean).isCloseTo(1.0, within(0.05));
    }

    @Test
    void infiniteRate_sendsEverythingAtOnce() {
        assertThat(ArrivalSchedule.poisson(3, Double.POSITIVE_INFINITY, 1)).containsExactly(0, 0, 0);
        assertThat(ArrivalSchedule.offeredRate(ArrivalSchedule.immediate(3))).isInfinite();
    }

    @Test
    void replay_dividesBySpeedup_andNeverGoesBack() {
        assertThat(ArrivalSchedule.replay(List.of(0.0, 1.0, 0.5, 4.0), 2.0)).containsExactly(0, 0.5, 0.5, 2.0);
        assertThatThrownBy(() -> ArrivalSchedule.replay(List.of(0.0), 0)).hasMessageContaining("--speedup");
        assertThatThrownBy(() -> ArrivalSchedule.poisson(1, -1, 0)).hasMessageContaining("--request-rate");
    }
}
