package io.moemesh.cli.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class AlternatingRoundsTest {

    @Test
    void run_alternatesTheOrderEachRound_andKeepsSamplesPerMeasure() throws Exception {
        List<String> calls = new ArrayList<>();
        List<AlternatingRounds.Measure<String>> measures = new ArrayList<>();
        for (String name : List.of("a", "b", "c")) {
            measures.add(round -> {
                calls.add(name);
                return name;
            });
        }
        List<String> seen = new ArrayList<>();
        List<List<String>> samples = AlternatingRounds.run(measures, 3, (sample, round) -> seen.add(sample));
        assertThat(calls).containsExactly("a", "b", "c", "c", "b", "a", "a", "b", "c");
        assertThat(seen).hasSize(9);
        assertThat(samples).hasSize(3).allSatisfy(s -> assertThat(s).hasSize(3));
        assertThat(samples.get(1)).containsExactly("b", "b", "b");
    }

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource({"5, 5", "3 1 2, 2", "4 1 3 2, 2", "7 9, 7"})
    void median_isTheMiddleSample_orTheLowerOfTheMiddleTwo(String rates, double median) {
        List<Double> samples = Arrays.stream(rates.split(" ")).map(Double::valueOf).toList();
        assertThat(AlternatingRounds.median(samples, x -> x)).isEqualTo(median);
    }

    @Test
    void noRounds_orNoSamples_areRefused() {
        assertThatThrownBy(() -> AlternatingRounds.run(List.<AlternatingRounds.Measure<String>>of(round -> "a"), 0,
                (x, round) -> { })).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("rounds must be at least 1, got 0");
        assertThatThrownBy(() -> AlternatingRounds.median(List.<Double>of(), x -> x))
                .isInstanceOf(IllegalArgumentException.class).hasMessage("no samples");
    }
}
