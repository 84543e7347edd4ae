package io.moemesh.model.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** How a step is cut into micro-batches: whole sequences, contiguous, balanced, cuts at multiples of 4 rows. */
class MicroBatchingTest {

    private static List<SequenceStep> steps(int... rows) {
        List<SequenceStep> out = new ArrayList<>();
        for (int i = 0; i < rows.length; i++) {
            out.add(new SequenceStep(i, new int[rows[i]], 0, SequenceStep.Logits.LAST, false));
        }
        return out;
    }

    private static int[] decode(int n) {
        int[] rows = new int[n];
        java.util.Arrays.fill(rows, 1);
        return rows;
    }

    @ParameterizedTest(name = "{0} decode rows, {1} micro-batches, min {2} rows -> cuts {3}")
    @CsvSource(delimiter = ';', value = {
            "32; 2; 2; 0 16 32",
            "10; 2; 2; 0 4 10",
            "6; 2; 2; 0 4 6",
            "2; 2; 2; 0 1 2",
            "1; 2; 2; 0 1",
            "32; 1; 2; 0 32",
            "7; 2; 8; 0 7",
            "8; 2; 8; 0 4 8",
            "3; 4; 2; 0 1 2 3",
            "32; 4; 2; 0 8 16 24 32"})
    void decodeBatch_cutNearestBalance_atMultiplesOf4(int sequences, int count, int minRows, String cuts) {
        int[] want = java.util.Arrays.stream(cuts.split(" ")).mapToInt(Integer::parseInt).toArray();
        assertThat(new MicroBatching(count, minRows).split(steps(decode(sequences)))).containsExactly(want);
    }

    /**
     * The rows-per-expert floor (MegaScale-Infer keeps each expert's micro-batch large enough to be compute-bound):
     * as many micro-batches as keep rows · topK ÷ (micro-batches · experts) at or above it, one batch if not two.
     */
    @ParameterizedTest(name = "{0} decode rows, at most {1}, top-{2} of {3} experts, floor {4} -> cuts {5}")
    @CsvSource(delimiter = ';', value = {
            "32; 2; 2; 8; 0; 0 16 32",
            "32; 2; 2; 8; 4; 0 16 32",
            "32; 2; 2; 8; 5; 0 32",
            "32; 4; 2; 8; 2; 0 8 16 24 32",
            "32; 4; 2; 8; 3; 0 16 32",
            "512; 2; 2; 8; 64; 0 256 512",
            "511; 2; 2; 8; 64; 0 511",
            "32; 2; 8; 64; 2; 0 16 32"})
    void rowsPerExpertFloor_limitsTheMicroBatches(int sequences, int count, int topK, int experts, int floor,
                                                  String cuts) {
        int[] want = java.util.Arrays.stream(cuts.split(" ")).mapToInt(Integer::parseInt).toArray();
        assertThat(new MicroBatching(count, 2, MicroBatchGrouping.CONTIGUOUS, floor)
                .split(steps(decode(sequences)), topK, experts)).containsExactly(want);
        // Without the model's routing the floor cannot apply: the plain split.
        assertThat(new MicroBatching(count, 2, MicroBatchGrouping.CONTIGUOUS, floor).split(steps(decode(sequences))))
                .containsExactly(new MicroBatching(count, 2).split(steps(decode(sequences))));
    }

    @Test
    void prefillChunks_stayWhole_cutAtTheSequenceBoundaryNearestHalf() {
        // rows 8 | 4 | 4 | 7: half is 11.5; boundary after 12 rows (score 0.5) beats after 8 (3.5).
        assertThat(MicroBatching.OFF.split(steps(8, 4, 4, 7))).containsExactly(0, 4);
        assertThat(new MicroBatching(2, 2).split(steps(8, 4, 4, 7))).containsExactly(0, 2, 4);
        // One long chunk and decodes: the chunk is never cut, whatever the balance.
        assertThat(new MicroBatching(2, 2).split(steps(100, 1, 1))).containsExactly(0, 1, 3);
    }

    @Property
    void everyCut_keepsSequencesWholeAndInOrder_andNoMicroBatchIsEmpty(
            @ForAll @Size(min = 1, max = 40) List<@IntRange(min = 1, max = 64) Integer> rows,
            @ForAll @IntRange(min = 1, max = 5) int count, @ForAll @IntRange(min = 2, max = 64) int minRows) {
        List<SequenceStep> batch = steps(rows.stream().mapToInt(Integer::intValue).toArray());
        int[] cuts = new MicroBatching(count, minRows).split(batch);
        int total = rows.stream().mapToInt(Integer::intValue).sum();
        assertThat(cuts[0]).isZero();
        assertThat(cuts[cuts.length - 1]).isEqualTo(batch.size());
        for (int i = 1; i < cuts.length; i++) {
            assertThat(cuts[i]).isGreaterThan(cuts[i - 1]);
        }
        int parts = cuts.length - 1;
        assertThat(parts).isLessThanOrEqualTo(count);
        if (total < minRows || batch.size() == 1 || count == 1) {
            assertThat(parts).isOne();
        } else {
            assertThat(parts).isEqualTo(Math.min(count, batch.size()));
        }
    }

    @Test
    void invalidSettings_refused_namingTheSetting() {
        assertThatThrownBy(() -> new MicroBatching(0, 2)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("micro-batches must be >= 1");
        assertThatThrownBy(() -> new MicroBatching(2, 1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("min rows must be >= 2");
        assertThatThrownBy(() -> new MicroBatching(2, 2, "by-path")).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("micro-batch grouping must be one of [contiguous, predicted-path], got 'by-path'");
        assertThatThrownBy(() -> new MicroBatching(2, 2, MicroBatchGrouping.CONTIGUOUS, -1))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("micro-batch min expert rows must be >= 0 (0 = none), got -1");
        assertThatThrownBy(() -> new MicroBatching(2, 2, null)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("micro-batch grouping must be one of [contiguous, predicted-path], got nothing");
    }
}
