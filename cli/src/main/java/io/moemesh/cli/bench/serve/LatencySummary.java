package io.moemesh.cli.bench.serve;

import org.HdrHistogram.Histogram;

/**
 * Mean, median (p50), p90 and p99 of one latency metric, in milliseconds. The mean is exact; percentiles come from
 * an HdrHistogram of nanosecond values with 3 significant digits (within 0.1% of the true value; HdrHistogram
 * reports the highest value equivalent to the rank, where numpy's {@code np.percentile} used by vLLM interpolates
 * linearly between neighbours). No samples = all zero, as vLLM's {@code np.mean(x or 0)}.
 */
public record LatencySummary(int count, double meanMs, double p50Ms, double p90Ms, double p99Ms) {
    private static final int SIGNIFICANT_DIGITS = 3;

    public static LatencySummary of(double[] nanos) {
        if (nanos.length == 0) {
            return new LatencySummary(0, 0, 0, 0, 0);
        }
        Histogram h = new Histogram(SIGNIFICANT_DIGITS);
        double sum = 0;
        for (double v : nanos) {
            sum += v;
            h.recordValue(Math.max(0, Math.round(v)));
        }
        return new LatencySummary(nanos.length, sum / nanos.length / 1e6, ms(h, 50), ms(h, 90), ms(h, 99));
    }

    private static double ms(Histogram h, double percentile) {
        return h.getValueAtPercentile(percentile) / 1e6;
    }
}
