package io.moemesh.model.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The predicted-path grouping as a plain object: which micro-batch each sequence joins given the paths it is
 * predicted to take, that the result is a permutation with balanced rows, and what it learns from routes.
 */
class PredictedPathGroupingTest {
    private static final int EXPERTS = 8;

    /** "0,1/2,3": experts 0 and 1 at layer 0, 2 and 3 at layer 1; "-": unknown. */
    private static long[] path(String spec) {
        if (spec.equals("-")) {
            return null;
        }
        long[] bits = new long[1];
        String[] layers = spec.split("/");
        for (int l = 0; l < layers.length; l++) {
            for (String e : layers[l].split(",")) {
                bits[0] |= 1L << (l * EXPERTS + Integer.parseInt(e));
            }
        }
        return bits;
    }

    private static int[] ints(String s) {
        return Arrays.stream(s.trim().split(" +")).mapToInt(Integer::parseInt).toArray();
    }

    @ParameterizedTest(name = "{0} into sizes {1} -> {2}")
    @CsvSource(delimiter = ';', value = {
            // Two kinds of path alternate in batch order: each kind gets its own micro-batch.
            "0,1/2,3 4,5/6,7 0,1/2,3 4,5/6,7; 2 2; 0 1 0 1",
            "0,1/2,3 4,5/6,7 4,5/6,7 0,1/2,3 0,1/2,3 4,5/6,7 0,1/2,3 4,5/6,7; 4 4; 0 1 1 0 0 1 0 1",
            // Half alike: C shares layer 0 with A, D layer 0 with B; the pair adding fewest pairs goes first.
            "0,1/2,3 6,7/6,7 0,1/4,5 6,7/0,1; 2 2; 0 1 0 1",
            // Room decides when paths cannot: the third A goes where there is room.
            "0,1/2,3 0,1/2,3 0,1/2,3 4,5/6,7; 2 2; 0 0 1 1",
            // Unknown paths (new sequences) fill the lowest micro-batch with room, in batch order.
            "0,1/2,3 - 4,5/6,7 0,1/2,3 - 4,5/6,7; 3 3; 0 0 1 0 1 1",
            // Sizes are the contiguous split's (4 | 6 for ten decodes).
            "0,1/2,3 4,5/6,7 0,1/2,3 4,5/6,7 0,1/2,3 4,5/6,7 0,1/2,3 4,5/6,7 0,1/2,3 4,5/6,7; 4 6; 0 1 0 1 0 1 0 1 1 1",
            // Three micro-batches, three kinds.
            "0/0 1/1 2/2 0/0 1/1 2/2; 2 2 2; 0 1 2 0 1 2"})
    void decodes_withSimilarPredictedPaths_shareAMicroBatch(String paths, String sizes, String want) {
        String[] specs = paths.split(" ");
        long[][] p = Arrays.stream(specs).map(PredictedPathGroupingTest::path).toArray(long[][]::new);
        int[] rows = new int[specs.length];
        Arrays.fill(rows, 1);
        assertThat(PredictedPathGrouping.assign(rows, p, ints(sizes))).containsExactly(ints(want));
    }

    @Test
    void prefillChunks_longestFirst_toTheLeastLoaded_decodesFillTheRest() {
        long[][] none = new long[4][];
        // 8 | 4 | 4 | 7 rows: 8 -> mb0, 7 -> mb1, 4 -> mb1 (7 < 8), 4 -> mb0: 12 | 11 rows.
        assertThat(PredictedPathGrouping.assign(new int[] {8, 4, 4, 7}, none, new int[] {12, 11}))
                .containsExactly(0, 1, 0, 1);
        // A chunk of 100 and two decodes: the decodes go to the other micro-batch.
        assertThat(PredictedPathGrouping.assign(new int[] {100, 1, 1}, new long[3][], new int[] {100, 2}))
                .containsExactly(0, 1, 1);
        // A decode alike a chunk's predicted path joins it while there is room.
        long[][] p = {path("0,1/2,3"), path("4,5/6,7"), path("0,1/2,3"), path("4,5/6,7")};
        assertThat(PredictedPathGrouping.assign(new int[] {3, 3, 1, 1}, p, new int[] {4, 4}))
                .containsExactly(0, 1, 0, 1);
    }

    @Test
    void groups_areMicroBatchesInOrder_batchOrderWithin() {
        MicroBatchGrouping.Groups g = PredictedPathGrouping.groups(new int[] {1, 0, 1, 0, 0});
        assertThat(g.order()).containsExactly(1, 3, 4, 0, 2);
        assertThat(g.cuts()).containsExactly(0, 3, 5);
    }

    @Test
    void notAPermutation_orAnEmptyMicroBatch_refused() {
        assertThatThrownBy(() -> new MicroBatchGrouping.Groups(new int[] {0, 0}, new int[] {0, 1, 2}))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not a permutation");
        assertThatThrownBy(() -> new MicroBatchGrouping.Groups(new int[] {0, 1}, new int[] {0, 0, 2}))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("micro-batch 0 is empty");
    }

    @Property
    void assignment_isAPermutation_everyMicroBatchUsed_rowsBalanced_deterministic(
            @ForAll @Size(min = 2, max = 40) List<@IntRange(min = 0, max = 80) Integer> kinds,
            @ForAll @IntRange(min = 2, max = 4) int count) {
        // kind 0: unknown decode; 1..59: a decode with one of 59 paths; 60..80: a prefill chunk of kind − 58 rows.
        int n = kinds.size();
        int[] rows = new int[n];
        long[][] paths = new long[n][];
        List<SequenceStep> batch = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int k = kinds.get(i);
            rows[i] = k >= 60 ? k - 58 : 1;
            paths[i] = k == 0 ? null : new long[] {k * 0x9E3779B97F4A7C15L, k * 0xC2B2AE3D27D4EB4FL};
            batch.add(new SequenceStep(i, new int[rows[i]], 0, SequenceStep.Logits.LAST, false));
        }
        int[] cuts = new MicroBatching(count, 2).split(batch);
        int parts = cuts.length - 1;
        int[] sizes = new int[parts];
        for (int m = 0; m < parts; m++) {
            for (int i = cuts[m]; i < cuts[m + 1]; i++) {
                sizes[m] += rows[i];
            }
        }
        int[] group = PredictedPathGrouping.assign(rows, paths, sizes);
        assertThat(PredictedPathGrouping.assign(rows, paths, sizes)).containsExactly(group);
        // Groups checks the permutation and that no micro-batch is empty.
        MicroBatchGrouping.Groups g = PredictedPathGrouping.groups(group);
        assertThat(g.cuts()).hasSize(parts + 1);
        int[] load = new int[parts];
        for (int i = 0; i < n; i++) {
            load[group[i]] += rows[i];
        }
        if (Arrays.stream(rows).allMatch(r -> r == 1)) {
            assertThat(load).containsExactly(sizes);
        } else {
            int longest = Arrays.stream(rows).max().orElseThrow();
            assertThat(Arrays.stream(load).max().orElseThrow() - Arrays.stream(load).min().orElseThrow())
                    .isLessThanOrEqualTo(Math.max(1, longest));
        }
    }

    @Test
    void predictsEachSequencesPreviousStepPath_andForgetsSequencesNotInTheLastStep() {
        PredictedPathGrouping grouping = new PredictedPathGrouping(2, EXPERTS);
        RouteObserver seen = grouping.observing(RouteObserver.NONE);
        StepContext first = StepContext.of(List.of(SequenceStep.decode(1, 0, 5), SequenceStep.decode(2, 0, 5)));
        // pairs per token 3: two routed experts and (as Qwen2-MoE) the shared expert, id = experts, never a path.
        seen.onRoutes(first, 0, new int[] {0, 1, EXPERTS, 4, 5, EXPERTS}, new float[6], 3);
        seen.onRoutes(first, 1, new int[] {2, 3, EXPERTS, 6, 7, EXPERTS}, new float[6], 3);
        assertThat(grouping.predicted(1)).containsExactly(path("0,1/2,3"));
        assertThat(grouping.predicted(2)).containsExactly(path("4,5/6,7"));
        StepContext second = StepContext.of(List.of(SequenceStep.decode(2, 0, 6), SequenceStep.decode(3, 0, 0)));
        seen.onRoutes(second, 0, new int[] {1, 2, EXPERTS, 3, 4, EXPERTS}, new float[6], 3);
        assertThat(grouping.predicted(1)).isNull();
        assertThat(grouping.predicted(2)).containsExactly(path("1,2/"));
        assertThat(grouping.predicted(3)).containsExactly(path("3,4/"));
    }

    @Test
    void noPathKnown_keepsTheContiguousSplit() {
        PredictedPathGrouping grouping = new PredictedPathGrouping(2, EXPERTS);
        List<SequenceStep> batch = List.of(SequenceStep.decode(1, 0, 5), SequenceStep.decode(2, 0, 5));
        assertThat(grouping.group(batch, new int[] {0, 1, 2})).isNull();
    }
}
