package io.moemesh.cli.bench.serve;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * When each request is sent, as offsets in seconds from the start of the run (non-decreasing).
 *
 * <p>Poisson arrivals follow vLLM's {@code get_request} (vllm/benchmarks/serve.py) with burstiness 1: the gaps are
 * exponential with mean {@code 1 / rate}, accumulated, then rescaled so the last request goes out at exactly
 * {@code n / rate} ("the sum would have a 1-2% gap from the target; close it to stabilise throughput across
 * seeds"). A rate of infinity sends everything at once. Trace replay keeps the recorded offsets, divided by the
 * speed-up factor.
 */
public final class ArrivalSchedule {
    private ArrivalSchedule() {
    }

    /** All {@code n} requests at time 0 (vLLM's {@code --request-rate inf}, the default). */
    public static double[] immediate(int n) {
        return new double[n];
    }

    /** Poisson process of {@code rate} requests/s; the same seed gives the same offsets. */
    public static double[] poisson(int n, double rate, long seed) {
        if (!(rate > 0)) {
            throw new IllegalArgumentException("--request-rate must be > 0, got " + rate);
        }
        if (Double.isInfinite(rate)) {
            return immediate(n);
        }
        SplittableRandom random = new SplittableRandom(seed);
        double[] t = new double[n];
        // vLLM yields the first request after sampling its delay too: delay_ts[0] is a sample, not 0.
        double sum = 0;
        for (int i = 0; i < n; i++) {
            sum += -Math.log(1 - random.nextDouble()) / rate;
            t[i] = sum;
        }
        if (n > 0 && t[n - 1] > 0) {
            double scale = (n / rate) / t[n - 1];
            for (int i = 0; i < n; i++) {
                t[i] *= scale;
            }
        }
        return t;
    }

    /** Recorded arrivals (seconds from the first request) replayed {@code speedup} times faster. */
    public static double[] replay(List<Double> recordedSeconds, double speedup) {
        if (!(speedup > 0) || Double.isInfinite(speedup)) {
            throw new IllegalArgumentException("--speedup must be a finite number > 0, got " + speedup);
        }
        double[] t = new double[recordedSeconds.size()];
        double last = 0;
        for (int i = 0; i < t.length; i++) {
            // Out-of-order rows are sent as soon as their predecessor: the schedule never goes back in time.
            last = Math.max(last, recordedSeconds.get(i) / speedup);
            t[i] = last;
        }
        return t;
    }

    /** Mean rate (requests/s) the schedule offers; infinity when everything starts at once. */
    public static double offeredRate(double[] offsets) {
        double span = offsets.length == 0 ? 0 : Arrays.stream(offsets).max().orElse(0);
        return span == 0 ? Double.POSITIVE_INFINITY : offsets.length / span;
    }
}
