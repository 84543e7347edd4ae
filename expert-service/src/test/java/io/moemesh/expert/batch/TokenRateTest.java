package io.moemesh.expert.batch;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class TokenRateTest {
    private static final long S = 1_000_000_000L;

    @Test
    void rate_isTokensOfTheLastMinute_overSixtySeconds() {
        TokenRate rate = new TokenRate();
        rate.add(600, 10 * S);
        rate.add(600, 30 * S + 5);
        assertThat(rate.perSecond(31 * S)).isEqualTo(20.0);
        assertThat(rate.perSecond(70 * S)).as("the first second has left the window").isEqualTo(10.0);
        assertThat(rate.perSecond(200 * S)).isZero();
    }
}
