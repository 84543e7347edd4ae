package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;

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
    void aNewSample_movesTheAverageByItsWeight() {
        TransferRates r = new TransferRates();
        r.prefilled(100, 1_000_000_000L);
        r.prefilled(200, 1_000_000_000L);
        assertThat(r.prefillTokensPerSecond()).isEqualTo(100 + TransferRates.WEIGHT * 100);
    }
}
