package io.moemesh.cli.bench.serve;

import java.util.List;
import java.util.OptionalDouble;
import java.util.TreeMap;

/**
 * The results of a run, computed as vLLM's {@code calculate_metrics} (vllm/benchmarks/serve.py):
 * <ul>
 * <li>TTFT, E2EL: one sample per successful request;</li>
 * <li>TPOT = (E2EL − TTFT) / (output_tokens − 1), one sample per successful request with more than one output
 *     token (goodput counts a one-token request's TPOT as 0);</li>
 * <li>ITL: every gap between consecutive streamed chunks of every successful request, pooled;</li>
 * <li>throughputs: completed requests, their input and output tokens, divided by the run's duration;</li>
 * <li>goodput: successful requests meeting every SLO, divided by the duration.</li>
 * </ul>
 */
public record ServeMetrics(int completed, int failed, int clipped, double durationSeconds, long totalInput,
                           long totalOutput, double requestThroughput, OptionalDouble requestGoodput,
                           double inputThroughput, double outputThroughput, double totalTokenThroughput,
                           LatencySummary ttft, LatencySummary tpot, LatencySummary itl, LatencySummary e2el,
                           TreeMap<String, Integer> errors) {

    public static ServeMetrics compute(List<RequestOutcome> outcomes, long durationNanos, int clipped, Slo slo) {
        double seconds = durationNanos / 1e9;
        int completed = 0;
        int good = 0;
        long input = 0;
        long output = 0;
        int itlCount = 0;
        for (RequestOutcome r : outcomes) {
            if (r.success()) {
                itlCount += r.itlNanos().length;
            }
        }
        double[] ttfts = new double[outcomes.size()];
        double[] e2els = new double[outcomes.size()];
        double[] tpots = new double[outcomes.size()];
        double[] itls = new double[itlCount];
        int nTpot = 0;
        int nItl = 0;
        TreeMap<String, Integer> errors = new TreeMap<>();
        for (RequestOutcome r : outcomes) {
            if (!r.success()) {
                errors.merge(errorKind(r.error()), 1, Integer::sum);
                continue;
            }
            ttfts[completed] = r.ttftNanos();
            e2els[completed] = r.latencyNanos();
            if (r.outputTokens() > 1) {
                tpots[nTpot++] = r.tpotNanos();
            }
            for (long gap : r.itlNanos()) {
                itls[nItl++] = gap;
            }
            input += r.promptTokens();
            output += r.outputTokens();
            if (!slo.isEmpty() && slo.met(r)) {
                good++;
            }
            completed++;
        }
        return new ServeMetrics(completed, outcomes.size() - completed, clipped, seconds, input, output,
                completed / seconds, slo.isEmpty() ? OptionalDouble.empty() : OptionalDouble.of(good / seconds),
                input / seconds, output / seconds, (input + output) / seconds,
                LatencySummary.of(java.util.Arrays.copyOf(ttfts, completed)),
                LatencySummary.of(java.util.Arrays.copyOf(tpots, nTpot)),
                LatencySummary.of(itls),
                LatencySummary.of(java.util.Arrays.copyOf(e2els, completed)), errors);
    }

    /** Groups failures by their first words ("HTTP 429", "timeout", "gRPC UNAVAILABLE") for the report. */
    static String errorKind(String error) {
        String e = error == null || error.isBlank() ? "unknown" : error.strip();
        int colon = e.indexOf(':');
        return colon > 0 ? e.substring(0, colon) : e.length() > 60 ? e.substring(0, 60) : e;
    }
}
