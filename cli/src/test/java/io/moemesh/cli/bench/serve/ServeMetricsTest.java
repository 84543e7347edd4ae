package io.moemesh.cli.bench.serve;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.util.List;
import org.junit.jupiter.api.Test;

/** vLLM's metric definitions on hand-made timelines (milliseconds turned into nanoseconds). */
class ServeMetricsTest {
    private static final long MS = 1_000_000;

    /** A request sent at 0 whose chunks carrying text arrive at the given times (ms). */
    private static RequestOutcome timeline(int promptTokens, int outputTokens, long... chunkMs) {
        StreamTimer t = new StreamTimer(1_000 * MS); // any origin: only differences matter
        for (long c : chunkMs) {
            t.onChunk(1_000 * MS + c * MS);
        }
        return t.finish(promptTokens, outputTokens);
    }

    @Test
    void streamTimer_ttftIsFirstChunk_itlAreGaps_latencyIsLastChunk() {
        RequestOutcome r = timeline(10, 4, 100, 130, 170, 230);

        assertThat(r.success()).isTrue();
        assertThat(r.ttftNanos()).isEqualTo(100 * MS);
        assertThat(r.itlNanos()).containsExactly(30 * MS, 40 * MS, 60 * MS);
        assertThat(r.latencyNanos()).isEqualTo(230 * MS);
        // TPOT = (e2el − ttft) / (output_tokens − 1) = (230 − 100) / 3
        assertThat(r.tpotNanos()).isCloseTo(130.0 / 3 * MS, within(1e-3));
    }

    @Test
    void tpotUsesServerTokenCount_notChunkCount() {
        // Two chunks, but the usage chunk says 5 tokens were generated (several tokens per chunk).
        RequestOutcome r = timeline(10, 5, 50, 250);

        assertThat(r.itlNanos()).containsExactly(200 * MS);
        assertThat(r.tpotNanos()).isCloseTo(200.0 / 4 * MS, within(1e-3));
    }

    @Test
    void noChunk_isAFailure_asVllm() {
        RequestOutcome r = new StreamTimer(0).finish(10, 0);
        assertThat(r.success()).isFalse();
        assertThat(r.error()).contains("never received");
    }

    @Test
    void aggregates_followVllmCalculateMetrics() {
        List<RequestOutcome> outcomes = List.of(
                timeline(10, 3, 100, 120, 140),       // ttft 100, tpot 20, e2el 140
                timeline(20, 2, 300, 400),            // ttft 300, tpot 100, e2el 400
                timeline(30, 1, 50),                  // one token: no TPOT sample, TPOT 0 for goodput
                RequestOutcome.failed("HTTP 429, Retry-After 1: overloaded", 40));
        ServeMetrics m = ServeMetrics.compute(outcomes, 2_000 * MS, 1, Slo.none());

        assertThat(m.completed()).isEqualTo(3);
        assertThat(m.failed()).isEqualTo(1);
        assertThat(m.errors()).containsEntry("HTTP 429, Retry-After 1", 1);
        assertThat(m.clipped()).isEqualTo(1);
        assertThat(m.totalInput()).isEqualTo(60);        // failed requests' inputs are not counted
        assertThat(m.totalOutput()).isEqualTo(6);
        assertThat(m.requestThroughput()).isCloseTo(1.5, within(1e-12));
        assertThat(m.inputThroughput()).isCloseTo(30, within(1e-12));
        assertThat(m.outputThroughput()).isCloseTo(3, within(1e-12));
        assertThat(m.totalTokenThroughput()).isCloseTo(33, within(1e-12));
        assertThat(m.requestGoodput()).isEmpty();

        assertThat(m.ttft().count()).isEqualTo(3);
        assertThat(m.ttft().meanMs()).isCloseTo(150, within(1e-9));
        assertThat(m.tpot().count()).isEqualTo(2);
        assertThat(m.tpot().meanMs()).isCloseTo(60, within(1e-9));
        assertThat(m.itl().count()).isEqualTo(3);         // 20, 20, 100 pooled over requests
        assertThat(m.itl().meanMs()).isCloseTo(140.0 / 3, within(1e-9));
        assertThat(m.e2el().meanMs()).isCloseTo((140 + 400 + 50) / 3.0, within(1e-9));
        // HdrHistogram percentiles: within its 3 significant digits of the sample at that rank.
        assertThat(m.ttft().p50Ms()).isCloseTo(100, within(0.1));
        assertThat(m.ttft().p99Ms()).isCloseTo(300, within(0.3));
        assertThat(m.itl().p50Ms()).isCloseTo(20, within(0.02));
        assertThat(m.e2el().p90Ms()).isCloseTo(400, within(0.4));
    }

    @Test
    void goodput_countsRequestsMeetingEverySlo_perSecond() {
        List<RequestOutcome> outcomes = List.of(
                timeline(10, 3, 100, 120, 140),       // ttft 100, tpot 20, e2el 140  → good
                timeline(10, 2, 300, 400),            // ttft 300 > 200                → bad
                timeline(10, 3, 100, 200, 300),       // tpot 100 > 50                 → bad
                timeline(10, 1, 150),                 // tpot counted as 0             → good
                timeline(10, 3, 200, 220, 240));      // ttft exactly at the bound     → good (s >= r)
        Slo slo = Slo.parse(List.of("ttft:200", "tpot:50"));
        ServeMetrics m = ServeMetrics.compute(outcomes, 4_000 * MS, 0, slo);

        assertThat(m.requestGoodput()).hasValueCloseTo(3 / 4.0, within(1e-12));
        assertThat(ServeMetrics.compute(outcomes, 4_000 * MS, 0, Slo.parse(List.of("e2el:150"))).requestGoodput())
                .hasValueCloseTo(2 / 4.0, within(1e-12));
    }

    @Test
    void slo_parsing() {
        assertThat(Slo.parse(List.of("ttft:500", "TPOT:50.5", "e2el:0")).boundsMs())
                .containsEntry("ttft", 500.0).containsEntry("tpot", 50.5).containsEntry("e2el", 0.0);
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> Slo.parse(List.of("itl:5")))
                .hasMessageContaining("unknown metric itl");
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> Slo.parse(List.of("ttft=5")))
                .hasMessageContaining("KEY:VALUE");
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> Slo.parse(List.of("ttft:-1")))
                .hasMessageContaining("≥ 0");
    }

    @Test
    void noSuccessfulRequest_latenciesAreZero_asVllm() {
        ServeMetrics m = ServeMetrics.compute(List.of(RequestOutcome.failed("timeout: x", 5)), 1_000 * MS, 0,
                Slo.none());
        assertThat(m.completed()).isZero();
        assertThat(m.ttft()).isEqualTo(new LatencySummary(0, 0, 0, 0, 0));
    }

    @Test
    void decodeRate_isTheSumOfInverseTpots() {
        List<RequestOutcome> outcomes = List.of(timeline(1, 11, 100, 1100), timeline(1, 6, 0, 500),
                timeline(1, 1, 10));
        // (11 − 1) / 1.0 s + (6 − 1) / 0.5 s = 20 tokens/s; the one-token request adds nothing.
        assertThat(Comparison.decodeRate(outcomes)).isCloseTo(20, within(1e-9));
    }
}
