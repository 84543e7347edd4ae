package io.moemesh.gateway.dispatch;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepContext;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * {@link DispatchTraces} as a plain object: steps laid out as the scheduler lays them out (batched sequences,
 * prefill chunks, decode rows, recompute), dispatched with a made-up rule (expert e of every layer on instance
 * "i" + e % 3, one pair per row: expert = position % 5, plus a second pair on expert 4 for every row), and the
 * record checked against what that rule implies for the traced sequence's own rows.
 */
class DispatchTracesTest {
    private static final List<String> INSTANCES = List.of("i0", "i1", "i2");
    private static final int LAYERS = 2;
    private static final int PAIRS = 2;

    /** A prompt chunk of {@code n} tokens at {@code from}. */
    private static SequenceStep chunk(long seq, int from, int n, boolean traced) {
        return new SequenceStep(seq, new int[n], from, SequenceStep.Logits.NONE, traced, "", SequenceStep.Phase.PREFILL);
    }

    /** Runs the made-up dispatch of {@code step} through every layer, recording into {@code traces}. */
    private static void dispatch(DispatchTraces traces, SequenceStep... seqs) {
        StepContext step = StepContext.of(List.of(seqs));
        int[] experts = new int[step.rows() * PAIRS];
        int[] target = new int[experts.length];
        for (int r = 0; r < step.rows(); r++) {
            experts[r * PAIRS] = step.position(r) % 5;
            experts[r * PAIRS + 1] = 4;
            for (int j = 0; j < PAIRS; j++) {
                target[r * PAIRS + j] = experts[r * PAIRS + j] % 3;
            }
        }
        for (int layer = 0; layer < LAYERS; layer++) {
            traces.record(step, layer, experts, PAIRS, target, INSTANCES, 7);
        }
    }

    /** What the rule implies for prompt positions [0, n): per instance (ascending) rows and experts. */
    private static List<LayerDispatchRecord.InstanceShare> implied(int n) {
        List<LayerDispatchRecord.InstanceShare> out = new ArrayList<>();
        for (int inst = 0; inst < 3; inst++) {
            int i = inst;
            java.util.TreeSet<Integer> experts = new java.util.TreeSet<>();
            int rows = 0;
            for (int p = 0; p < n; p++) {
                boolean visits = false;
                for (int e : new int[] {p % 5, 4}) {
                    if (e % 3 == i) {
                        experts.add(e);
                        visits = true;
                    }
                }
                rows += visits ? 1 : 0;
            }
            if (rows > 0) {
                out.add(new LayerDispatchRecord.InstanceShare("i" + inst, rows, experts));
            }
        }
        return out;
    }

    private static void assertImplied(PromptDispatch d, int promptTokens) {
        assertThat(d.epoch()).isEqualTo(7);
        assertThat(d.layers()).extracting(LayerDispatchRecord::layer).containsExactly(0, 1);
        for (LayerDispatchRecord l : d.layers()) {
            assertThat(l.instances()).as("layer %d", l.layer()).isEqualTo(implied(promptTokens));
        }
    }

    @Test
    void chunkedPrompt_batchedWithOthers_countsOnlyItsOwnRows_allChunksTogether() {
        DispatchTraces traces = new DispatchTraces(LAYERS, 8);
        dispatch(traces, SequenceStep.decode(1, 3, 40), chunk(2, 0, 6, true), chunk(3, 0, 9, false));
        dispatch(traces, SequenceStep.decode(1, 3, 41), chunk(2, 6, 6, true), chunk(3, 9, 2, false), chunk(4, 0, 4, true));
        dispatch(traces, chunk(2, 12, 1, true), chunk(4, 4, 11, true));

        assertImplied(traces.take(2), 13);
        assertImplied(traces.take(4), 15);
        assertThat(traces.held()).isZero();
    }

    @Test
    void untracedRows_decodeRows_andRecomputedContext_recordNothing() {
        DispatchTraces traces = new DispatchTraces(LAYERS, 8);
        // A traced request's decode steps and the untraced recompute after a preemption past its prompt.
        dispatch(traces, chunk(1, 0, 5, false), SequenceStep.decode(2, 1, 9),
                new SequenceStep(3, new int[4], 0, SequenceStep.Logits.NONE, false, "", SequenceStep.Phase.PREFILL));
        assertThat(traces.held()).isZero();
        assertThat(traces.take(1)).isEqualTo(PromptDispatch.NONE);
        assertThat(traces.take(2)).isEqualTo(PromptDispatch.NONE);
    }

    @Test
    void promptRecomputedAfterPreemption_countsEachPositionOnce() {
        DispatchTraces traces = new DispatchTraces(LAYERS, 8);
        dispatch(traces, chunk(1, 0, 8, true));
        dispatch(traces, chunk(1, 8, 8, true));
        // Preempted during its prefill: the prompt starts over from position 0.
        dispatch(traces, chunk(1, 0, 8, true));
        dispatch(traces, chunk(1, 8, 8, true));
        dispatch(traces, chunk(1, 16, 3, true));

        assertThat(traces.rerecorded()).isEqualTo(16L * LAYERS);
        assertImplied(traces.take(1), 19);
    }

    @Test
    void recomputedRow_onAnotherReplica_isCountedWhereItWasComputedLast() {
        DispatchTraces traces = new DispatchTraces(1, 8);
        StepContext step = StepContext.of(List.of(chunk(1, 0, 2, true)));
        traces.record(step, 0, new int[] {5, 5}, 1, new int[] {0, 0}, List.of("a", "b"), 1);
        traces.record(step, 0, new int[] {5, 5}, 1, new int[] {1, 0}, List.of("a", "b"), 2);

        PromptDispatch d = traces.take(1);
        assertThat(d.epoch()).isEqualTo(2);
        assertThat(d.layers().getFirst().instances()).extracting(LayerDispatchRecord.InstanceShare::instanceId,
                LayerDispatchRecord.InstanceShare::tokens).containsExactly(
                        org.assertj.core.groups.Tuple.tuple("a", 1), org.assertj.core.groups.Tuple.tuple("b", 1));
    }

    @Test
    void instances_ascendingById_whateverThePlacementOrder() {
        DispatchTraces traces = new DispatchTraces(1, 8);
        StepContext step = StepContext.of(List.of(chunk(1, 0, 3, true)));
        traces.record(step, 0, new int[] {0, 1, 2}, 1, new int[] {0, 1, 2}, List.of("expert-2", "expert-10", "expert-1"), 1);
        assertThat(traces.take(1).layers().getFirst().instances()).extracting(LayerDispatchRecord.InstanceShare::instanceId)
                .containsExactly("expert-1", "expert-10", "expert-2");
    }

    @Test
    void discard_forgetsTheRecord() {
        DispatchTraces traces = new DispatchTraces(LAYERS, 8);
        dispatch(traces, chunk(1, 0, 4, true));
        traces.discard(1);
        traces.discard(99);
        assertThat(traces.held()).isZero();
        assertThat(traces.take(1)).isEqualTo(PromptDispatch.NONE);
    }

    @Test
    void pastCapacity_theOldestRecordIsDropped_soNothingLeaks() {
        DispatchTraces traces = new DispatchTraces(LAYERS, 3);
        IntStream.rangeClosed(1, 5).forEach(seq -> dispatch(traces, chunk(seq, 0, 2, true)));
        assertThat(traces.held()).isEqualTo(3);
        assertThat(traces.evicted()).isEqualTo(2);
        assertThat(traces.take(1)).isEqualTo(PromptDispatch.NONE);
        assertThat(traces.take(2)).isEqualTo(PromptDispatch.NONE);
        assertImplied(traces.take(5), 2);
    }

    /**
     * On Kubernetes instance ids are pod names, new with every rollout: over 1,000 placements of fresh ids, the ids
     * held are only those the records still held name (none once they are taken), and each record still names its
     * own placement's instances.
     */
    @Test
    void instanceIdsOfAThousandPlacements_areHeldOnlyByTheRecordsThatNameThem() {
        DispatchTraces traces = new DispatchTraces(LAYERS, 8);
        for (int k = 0; k < 1_000; k++) {
            List<String> ids = List.of("pod-" + k + "-a", "pod-" + k + "-b", "pod-" + k + "-c");
            StepContext step = StepContext.of(List.of(chunk(k, 0, 3, true)));
            int[] experts = {0, 4, 1, 4, 2, 4};
            int[] target = {0, 1, 1, 1, 2, 1};
            for (int layer = 0; layer < LAYERS; layer++) {
                traces.record(step, layer, experts, PAIRS, target, ids, k);
            }
            if (k % 3 == 0) {
                PromptDispatch d = traces.take(k);
                assertThat(d.layers().getFirst().instances()).extracting(LayerDispatchRecord.InstanceShare::instanceId)
                        .containsExactlyElementsOf(ids);
            }

            assertThat(traces.instanceIdsHeld()).as("placement %d", k).isLessThanOrEqualTo(3 * traces.held());
        }
        for (long seq = 0; seq < 1_000; seq++) {
            traces.discard(seq);
        }
        assertThat(traces.instanceIdsHeld()).isZero();
    }

    @Test
    void zeroLayersOrCapacity_refused() {
        assertThatThrownBy(() -> new DispatchTraces(0, 1)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new DispatchTraces(1, 0)).isInstanceOf(IllegalArgumentException.class);
    }
}
