package io.moemesh.model.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.MoeModel;
import io.moemesh.model.golden.TestModels;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * What the engine hands on at the step boundary: every layer's routes of every row to the route observer (traced
 * or not, the same experts and weights a trace records), the step context to the expert dispatch, and the cache's
 * step hooks in order, with no completion for a step that failed.
 */
class EngineStepBoundaryTest {
    private static MoeModel model;

    @BeforeAll
    static void open() {
        model = MoeModel.open(TestModels.dir(TestModels.QWEN2_MOE));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private record Seen(int layer, long[] seqIds, int[] experts, float[] weights) {
    }

    private static List<SequenceStep> batch() {
        return List.of(new SequenceStep(1, new int[] {3, 17, 9, 4, 250}, 0, SequenceStep.Logits.LAST, true, "a",
                        SequenceStep.Phase.PREFILL),
                new SequenceStep(2, new int[] {8, 8, 1}, 0, SequenceStep.Logits.LAST, false, "b", SequenceStep.Phase.PREFILL));
    }

    @Test
    void routeObserver_seesEveryRowAtEveryLayer_tracedOrNot_theExpertsAndWeightsATraceRecords() {
        List<Seen> seen = new ArrayList<>();
        RouteObserver observer = (step, layer, experts, weights, p) -> {
            long[] ids = new long[step.rows()];
            for (int r = 0; r < ids.length; r++) {
                ids[r] = step.seqId(r);
            }
            seen.add(new Seen(layer, ids, Arrays.copyOf(experts, step.rows() * p), Arrays.copyOf(weights, step.rows() * p)));
        };
        var c = model.config();
        Engine engine = model.engine(LocalExperts.fromStore(model.tensors(), c), observer);
        List<StepOutput> out = engine.step(batch(), model.newCache(64));
        assertThat(seen).extracting(Seen::layer).containsExactlyElementsOf(
                java.util.stream.IntStream.range(0, c.numLayers()).boxed().toList());
        int p = c.pairsPerToken();
        StepOutput traced = out.getFirst();
        for (Seen s : seen) {
            assertThat(s.seqIds()).containsExactly(1, 1, 1, 1, 1, 2, 2, 2);
            for (int row = 0; row < 5; row++) {
                int[] k = Arrays.copyOfRange(s.experts(), row * p, row * p + c.topK());
                float[] w = Arrays.copyOfRange(s.weights(), row * p, row * p + c.topK());
                assertThat(k).as("layer %d row %d experts", s.layer(), row).containsExactly(traced.routes()[s.layer()][row]);
                assertThat(w).as("layer %d row %d weights", s.layer(), row)
                        .containsExactly(traced.routeWeights()[s.layer()][row]);
            }
            // Qwen2-MoE: the shared expert joins every row, untraced ones included, after the routed ones.
            for (int row = 0; row < 8; row++) {
                assertThat(s.experts()[row * p + c.topK()]).isEqualTo(c.numExperts());
            }
        }
        assertThat(out.get(1).routes()).as("untraced sequence").isNull();
    }

    @ParameterizedTest(name = "dispatch fails: {0}")
    @ValueSource(booleans = {false, true})
    void cacheHooks_startThenComplete_andAFailedStepNeverCompletes(boolean fail) {
        List<String> events = new ArrayList<>();
        PagedKvCache pool = model.newCache(64);
        KvCache cache = new ForwardingKvCache(pool) {
            @Override
            public void stepStarted(StepContext step) {
                events.add("started " + step.rows());
            }

            @Override
            public void stepCompleted(StepContext step) {
                events.add("completed " + step.rows());
            }
        };
        LocalExperts local = LocalExperts.fromStore(model.tensors(), model.config());
        List<Integer> dispatchedRows = new ArrayList<>();
        ExpertDispatch dispatch = (step, layer, x, experts, weights, p, out) -> {
            dispatchedRows.add(step.rows());
            if (fail && layer == 1) {
                throw new IllegalStateException("no healthy replica");
            }
            local.run(step, layer, x, experts, weights, p, out);
        };
        Engine engine = model.engine(dispatch);
        if (fail) {
            assertThatThrownBy(() -> engine.step(batch(), cache)).hasMessageContaining("no healthy replica");
            assertThat(events).containsExactly("started 8");
        } else {
            engine.step(batch(), cache);
            assertThat(events).containsExactly("started 8", "completed 8");
        }
        assertThat(dispatchedRows).isNotEmpty().containsOnly(8);
    }
}
