package io.moemesh.cli.bench;

import java.util.Arrays;
import java.util.Locale;

/** Median and spread of repeated measurements, formatted for a markdown cell. */
record Stats(double median, double min, double max) {

    static Stats of(double[] values) {
        double[] v = values.clone();
        Arrays.sort(v);
        int n = v.length;
        double median = n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
        return new Stats(median, v[0], v[n - 1]);
    }

    /** {@code 123 (118–130)}: median, then min–max over the repeats. */
    String cell() {
        return min == max ? fmt(median) : fmt(median) + " (" + fmt(min) + "–" + fmt(max) + ")";
    }

    static String fmt(double v) {
        return v >= 100 ? String.format(Locale.ROOT, "%.0f", v) : String.format(Locale.ROOT, "%.1f", v);
    }
}
