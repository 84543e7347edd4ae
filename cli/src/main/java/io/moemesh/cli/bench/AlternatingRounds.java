package io.moemesh.cli.bench;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.function.ObjIntConsumer;
import java.util.function.ToDoubleFunction;

/**
 * Measures rows of a benchmark in rounds of alternating order (forward, backward, forward, ...) and picks each
 * row's median: on a virtual disk the host's cache of a file moves its read rate from one minute to the next, and on
 * this shared host a decode run's rate moves by ±12% between runs minutes apart, so a row that always ran right after
 * another would always find the machine as the other left it, and one pass per row compares luck
 * (docs/performance.md, "The yardstick" and "bench mesh: mesh ÷ monolithic decode").
 */
public final class AlternatingRounds {
    /** One measurement of one row in round {@code round} (from 1), e.g. drops the page cache, reads, times it. */
    @FunctionalInterface
    public interface Measure<R> {
        R run(int round) throws Exception;
    }

    private AlternatingRounds() {
    }

    /**
     * Runs every measure {@code rounds} times, in alternating order, calling {@code each} with every sample and its
     * round (from 1); returns each measure's samples in round order, in the order of {@code measures}.
     */
    public static <R> List<List<R>> run(List<Measure<R>> measures, int rounds, ObjIntConsumer<R> each) throws Exception {
        if (rounds < 1) {
            throw new IllegalArgumentException("rounds must be at least 1, got " + rounds);
        }
        List<List<R>> samples = new ArrayList<>();
        measures.forEach(m -> samples.add(new ArrayList<>()));
        for (int round = 0; round < rounds; round++) {
            for (int k = 0; k < measures.size(); k++) {
                int i = round % 2 == 0 ? k : measures.size() - 1 - k;
                R r = measures.get(i).run(round + 1);
                samples.get(i).add(r);
                each.accept(r, round + 1);
            }
        }
        return samples;
    }

    /** The sample with the median {@code rate} (the lower of the middle two for an even count). */
    public static <R> R median(List<R> samples, ToDoubleFunction<R> rate) {
        if (samples.isEmpty()) {
            throw new IllegalArgumentException("no samples");
        }
        List<R> sorted = samples.stream().sorted(Comparator.comparingDouble(rate)).toList();
        return sorted.get((sorted.size() - 1) / 2);
    }

    /** The samples' rates in round order, for a report: {@code "2649 / 3396 / 3001"}. */
    public static <R> String perRound(List<R> samples, ToDoubleFunction<R> rate) {
        return String.join(" / ", samples.stream()
                .map(x -> String.format(Locale.ROOT, "%.0f", rate.applyAsDouble(x))).toList());
    }
}
