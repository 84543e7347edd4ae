package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;

import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The swap-or-recompute prediction from measured rates (no clock: samples are given as bytes, tokens and nanos). */
class TransferRatesTest {

    @Test
    void unmeasured_neverPredictsARestoreFaster() {
        TransferRates r = new TransferRates();
        assertThat(r.restoreFaster(1000, 1024)).isFalse();
        r.restored(1 << 20, 1_000_000);
        assertThat(r.restoreFaster(1000, 1024)).as("prefill rate still unknown").isFalse();
    }

    @ParameterizedTest(name = "restore {0} B/s, prefill {1} tok/s, {2} B/token: restore faster = {3}")
    @CsvSource({
        "1000000000, 1000, 4096, true",    // 4 µs vs 1 ms per token
        "1000000, 1000, 4096, false",      // 4 ms vs 1 ms per token
        "4096000, 1000, 4096, false"})     // equal: recompute (no gain)
    void restoreFaster_comparesBytesOverBandwidthWithTokensOverThroughput(long bytesPerSecond, int tokensPerSecond,
                                                                          long bytesPerToken, boolean faster) {
        TransferRates r = new TransferRates();
        r.restored(bytesPerSecond, 1_000_000_000L);
        r.prefilled(tokensPerSecond, 1_000_000_000L);
        assertThat(r.restoreFaster(64, bytesPerToken)).isEqualTo(faster);
    }

    @Test
    void aNewRestore_movesTheAverageByItsWeight() {
        TransferRates r = new TransferRates();
        r.restored(100, 1_000_000_000L);
        r.restored(200, 1_000_000_000L);
        assertThat(r.restoreBytesPerSecond()).isEqualTo(100 + TransferRates.WEIGHT * 100);
    }

    @Test
    void aPrefillStep_movesTheAverageByItsTokens() {
        TransferRates r = new TransferRates();
        r.prefilled(1024, 1_000_000_000L);
        r.prefilled(200, 1_000_000_000L);
        assertThat(r.prefillTokensPerSecond()).isCloseTo(
                1024 + (1 - Math.exp(-200 / TransferRates.PREFILL_MEMORY_TOKENS)) * (200 - 1024), Offset.offset(1e-9));
    }

    @Test
    void aFirstStepOfAFewPrefillTokens_weighsByItsTokens_notAsTheWholeStartingPoint() {
        TransferRates r = new TransferRates();
        r.prefilled(2, 100_000_000L); // a 2-token tail timed on a decode step: "20 tok/s"
        r.prefilled(1000, 200_000_000L); // a prefill step: 5,000 tok/s

        // The tokens' mean of the two rates; before, the first sample was the start whatever its tokens, and the
        // second moved it 62% of the way: 3,125 tok/s, until another thousand tokens went by.
        assertThat(r.prefillTokensPerSecond()).isCloseTo((2 * 20.0 + 1000 * 5000.0) / 1002, Offset.offset(1e-6));
    }

    @Test
    void prefillTailsOfDecodeSteps_barelyMoveThePrefillRate_soRecomputingStaysPredictedFaster() {
        TransferRates r = new TransferRates();
        r.prefilled(450, 100_000_000L); // a prefill step: 4,500 tok/s
        for (int i = 0; i < 5; i++) {
            r.prefilled(2, 100_000_000L); // 62 decode rows and a 2-token prefill tail: "20 tok/s"
        }
        r.restored(2_000L * 4096, 1_000_000_000L); // restores 2,000 tokens of 4 KiB a second

        assertThat(r.prefillTokensPerSecond()).isGreaterThan(4000);
        assertThat(r.restoreFaster(64, 4096)).as("recomputing at 4,500 tok/s beats restoring at 2,000").isFalse();
    }

    @Test
    void failedRestores_areSampledAsSlowerThanRecomputing_andTurnTheChoiceToRecompute() {
        TransferRates r = new TransferRates();
        r.restored(1_000_000_000L, 1_000_000_000L); // 1 GB/s: a 4 KiB token restores in 4 µs
        r.prefilled(1000, 1_000_000_000L); // 1 ms per token
        assertThat(r.restoreFaster(64, 4096)).isTrue();
        // 64 tokens' bytes, each attempt failing after its 2 s fetch timeout
        int failures = 0;
        while (r.restoreFaster(64, 4096) && failures < 50) {
            r.restoreFailed(64 * 4096, 64, 2_000_000_000L);
            failures++;
        }
        assertThat(r.restoreFaster(64, 4096)).as("after %d failures", failures).isFalse();

        TransferRates one = new TransferRates();
        one.prefilled(1000, 1_000_000_000L);
        one.restoreFailed(64 * 4096, 64, 2_000_000_000L);
        assertThat(one.restoreBytesPerSecond()).as("its bytes over its 2 s plus the 64 ms recompute")
                .isCloseTo(64 * 4096 / 2.064, org.assertj.core.data.Offset.offset(1e-6));
        assertThat(one.restoreFaster(64, 4096)).isFalse();
    }
}
