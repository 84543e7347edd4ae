package io.moemesh.cli.bench.serve;

import java.util.List;

/**
 * The goal check: N concurrent streams through the gateway against the reference engine's N-sequence
 * batch on the same prompts, measured in the same run.
 *
 * <p>Decode tokens/s = Σ over sequences of (output_tokens − 1) / (E2EL − TTFT) = Σ 1 / TPOT_i, vLLM's TPOT
 * (generation after the first token, prefill excluded) summed over the concurrent sequences: the aggregate decode
 * rate of the batch. Output throughput (all tokens / wall time, prefill included) is reported beside it.
 */
public record Comparison(ServeMetrics engine, double engineDecodeTokensPerSecond, ServeMetrics gateway,
                         double gatewayDecodeTokensPerSecond) {

    public static Comparison of(List<RequestOutcome> engine, long engineNanos, List<RequestOutcome> gateway,
                                long gatewayNanos) {
        return new Comparison(ServeMetrics.compute(engine, engineNanos, 0, Slo.none()), decodeRate(engine),
                ServeMetrics.compute(gateway, gatewayNanos, 0, Slo.none()), decodeRate(gateway));
    }

    /** Σ 1 / TPOT_i over successful sequences with more than one output token, in tokens/s. */
    public static double decodeRate(List<RequestOutcome> outcomes) {
        double rate = 0;
        for (RequestOutcome r : outcomes) {
            if (r.success() && r.outputTokens() > 1 && r.latencyNanos() > r.ttftNanos()) {
                rate += 1e9 / r.tpotNanos();
            }
        }
        return rate;
    }

    public double decodeRatio() {
        return engineDecodeTokensPerSecond == 0 ? 0 : gatewayDecodeTokensPerSecond / engineDecodeTokensPerSecond;
    }

    public double outputThroughputRatio() {
        return engine.outputThroughput() == 0 ? 0 : gateway.outputThroughput() / engine.outputThroughput();
    }
}
