package io.moemesh.cli.bench.mesh;

import java.util.Arrays;

/** Nearest-rank percentiles of a sample of durations in nanoseconds. */
record Percentiles(long p50, long p99, long min, int n) {

    static Percentiles of(long[] samples, int n) {
        long[] s = Arrays.copyOf(samples, n);
        Arrays.sort(s);
        return new Percentiles(rank(s, 0.50), rank(s, 0.99), s[0], n);
    }

    private static long rank(long[] sorted, double p) {
        int i = (int) Math.ceil(p * sorted.length) - 1;
        return sorted[Math.max(0, Math.min(sorted.length - 1, i))];
    }

    static String micros(long nanos) {
        return String.format(java.util.Locale.ROOT, "%.1f", nanos / 1000.0);
    }
}
