package io.moemesh.expert.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Which bound a batch gets: the small one up to the event loop's 4 tokens, the large one above. */
class KernelThreadsTest {

    @ParameterizedTest(name = "{0} tokens → {1}")
    @CsvSource({"1, 1", "3, 1", "4, 1", "5, 2", "64, 2", "4096, 2"})
    void forTokens_smallBoundUpToFourTokens_largeAbove(int tokens, int expected) {
        assertThat(new KernelThreads(1, 2).forTokens(tokens)).isEqualTo(expected);
    }

    @ParameterizedTest(name = "{0} tokens")
    @CsvSource({"1", "4", "5", "64"})
    void everyCore_boundsNothing(int tokens) {
        assertThat(KernelThreads.EVERY_CORE.forTokens(tokens)).isZero();
    }

    @ParameterizedTest(name = "small {0}, large {1}")
    @CsvSource({"-1, 0", "0, -1", "-3, -3"})
    void belowZero_refused_namingBoth(int small, int large) {
        assertThatThrownBy(() -> new KernelThreads(small, large))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("kernel threads must be >= 0 (0 = every core), got " + small + " for small batches and "
                        + large + " for large ones");
    }
}
