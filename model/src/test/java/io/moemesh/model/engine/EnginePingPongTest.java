package io.moemesh.model.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.MoeModel;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.kernel.MatMul;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Ping-pong micro-batches (MegaScale-Infer, Zhu et al. 2025): a step split in two computes what it computes as
 * one batch, each micro-batch's expert call is sent before the other's previous one is awaited, and a failure in
 * either fails the step with no call left in flight.
 *
 * <p>Bit for bit: with an expert dispatch whose result per row does not depend on the other rows (each row
 * computed alone here, as an expert-service that computes row by row does), the dense part is the same GEMMs
 * over the same rows at the same places in their 4-row tiles (cuts at multiples of 4, under the BLAS threshold),
 * so logits, routes and lookahead are identical. With {@link LocalExperts}, whose grouped GEMM per expert sees
 * other rows when the batch is split, the last bits may differ: tokens equal, logits within 1e-5.
 */
class EnginePingPongTest {

    @BeforeAll
    static void warm() {
        // Only for speed: the kernels' bits do not depend on the JIT tier (JitTierBitsTest).
        MatMul.warmUp();
    }

    /** Prefill of 4 sequences (8 | 4 | 4 | 7 rows: cut after 12), then their decodes plus a new prompt (cut after 4). */
    private static List<List<SequenceStep>> workload(ModelConfig c) {
        List<SequenceStep> first = new ArrayList<>();
        int[] lengths = {8, 4, 4, 7};
        for (int s = 0; s < lengths.length; s++) {
            int[] tokens = new int[lengths[s]];
            for (int i = 0; i < tokens.length; i++) {
                tokens[i] = (5 + 31 * s + 7 * i) % c.vocabSize();
            }
            first.add(new SequenceStep(s + 1, tokens, 0, SequenceStep.Logits.ALL, s == 2));
        }
        List<SequenceStep> second = new ArrayList<>();
        for (int s = 0; s < lengths.length; s++) {
            second.add(new SequenceStep(s + 1, new int[] {(11 + 13 * s) % c.vocabSize()}, lengths[s],
                    SequenceStep.Logits.LAST, s == 1));
        }
        second.add(new SequenceStep(9, new int[] {3, 1, 4, 1, 5}, 0, SequenceStep.Logits.ALL, false));
        return List.of(first, second);
    }

    /** Everything a run shows: logits and traces of each step, and what the observers saw. */
    private record Run(List<List<StepOutput>> outputs, List<int[]> routes, List<float[]> routeWeights,
                       List<int[]> lookahead, RecordingDispatch dispatch, Engine engine) {
    }

    private static Run run(String name, MicroBatching mb, boolean rowwise) {
        try (MoeModel model = MoeModel.open(TestModels.dir(name))) {
            ModelConfig c = model.config();
            RecordingDispatch dispatch = new RecordingDispatch(LocalExperts.fromStore(model.tensors(), c), c, rowwise);
            List<int[]> routes = new ArrayList<>();
            List<float[]> weights = new ArrayList<>();
            List<int[]> ahead = new ArrayList<>();
            RouteObserver ro = (step, layer, experts, w, pairs) -> {
                routes.add(java.util.Arrays.copyOf(experts, step.rows() * pairs));
                weights.add(java.util.Arrays.copyOf(w, step.rows() * pairs));
            };
            LookaheadObserver lo = new LookaheadObserver() {
                @Override
                public int guesses() {
                    return 2;
                }

                @Override
                public void onLookahead(StepContext step, int nextLayer, int[] experts, float[] scores, int perRow) {
                    ahead.add(java.util.Arrays.copyOf(experts, step.rows() * perRow));
                }
            };
            Engine engine = new Engine(c, model.denseWeights(), dispatch, ro, lo, RemoteAttention.NONE, mb);
            PagedKvCache cache = model.newCache(256);
            List<List<StepOutput>> outs = new ArrayList<>();
            for (List<SequenceStep> step : workload(c)) {
                outs.add(engine.step(step, cache));
            }
            return new Run(outs, routes, weights, ahead, dispatch, engine);
        }
    }

    private static boolean sameLogits(Run one, Run two) {
        for (int s = 0; s < one.outputs().size(); s++) {
            for (int i = 0; i < one.outputs().get(s).size(); i++) {
                if (!java.util.Arrays.equals(one.outputs().get(s).get(i).logits(), two.outputs().get(s).get(i).logits())) {
                    return false;
                }
            }
        }
        return true;
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {TestModels.MIXTRAL, TestModels.MIXTRAL_BF16, TestModels.QWEN2_MOE})
    void twoMicroBatches_bitIdenticalToOneBatch_whenExpertsAreRowIndependent(String name) {
        // One run each decides: the kernels give the same bits in every JIT tier (JitTierBitsTest).
        Run one = run(name, MicroBatching.OFF, true);
        Run two = run(name, new MicroBatching(2, 2), true);
        for (int s = 0; s < one.outputs().size(); s++) {
            for (int i = 0; i < one.outputs().get(s).size(); i++) {
                StepOutput a = one.outputs().get(s).get(i);
                StepOutput b = two.outputs().get(s).get(i);
                assertThat(b.seqId()).isEqualTo(a.seqId());
                assertThat(b.logits()).as("step %d sequence %d", s, a.seqId()).containsExactly(a.logits());
                assertThat(b.routes()).isDeepEqualTo(a.routes());
                assertThat(b.routeWeights()).isDeepEqualTo(a.routeWeights());
            }
        }
        // The observers see the whole step once per layer, in row order, as without micro-batches.
        assertThat(two.routes()).hasSameSizeAs(one.routes());
        for (int i = 0; i < one.routes().size(); i++) {
            assertThat(two.routes().get(i)).containsExactly(one.routes().get(i));
            assertThat(two.routeWeights().get(i)).containsExactly(one.routeWeights().get(i));
        }
        assertThat(two.lookahead()).hasSameSizeAs(one.lookahead());
        for (int i = 0; i < one.lookahead().size(); i++) {
            assertThat(two.lookahead().get(i)).containsExactly(one.lookahead().get(i));
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {TestModels.MIXTRAL, TestModels.MIXTRAL_BF16, TestModels.QWEN2_MOE})
    void twoMicroBatches_withGroupedLocalExperts_sameTokens_logitsWithin1e5(String name) {
        Run one = run(name, MicroBatching.OFF, false);
        Run two = run(name, new MicroBatching(2, 2), false);
        for (int s = 0; s < one.outputs().size(); s++) {
            for (int i = 0; i < one.outputs().get(s).size(); i++) {
                float[] a = one.outputs().get(s).get(i).logits();
                float[] b = two.outputs().get(s).get(i).logits();
                assertThat(b).hasSameSizeAs(a);
                int vocab = one.engine().config().vocabSize();
                for (int r = 0; r < a.length / vocab; r++) {
                    assertThat(argmax(b, r * vocab, vocab)).isEqualTo(argmax(a, r * vocab, vocab));
                }
                for (int j = 0; j < a.length; j++) {
                    assertThat(Math.abs(b[j] - a[j])).isLessThanOrEqualTo(1e-5f);
                }
            }
        }
    }

    @ParameterizedTest(name = "{0} micro-batches")
    @ValueSource(ints = {1, 2, 3})
    void eachMicroBatch_sentBeforeThePreviousIsAwaited_andEveryCallAwaited(int count) {
        Run r = run(TestModels.MIXTRAL, new MicroBatching(count, 2), true);
        int layers = r.engine().config().numLayers();
        // Step 1: 4 sequences -> min(count, 4) micro-batches. Per layer l, micro-batch m: await (m, l-1), start (m, l).
        List<String> want = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            for (int m = 0; m < count; m++) {
                if (l > 0) {
                    want.add("await " + (l - 1) + " mb" + m);
                }
                want.add("start " + l + " mb" + m);
            }
        }
        for (int m = 0; m < count; m++) {
            want.add("await " + (layers - 1) + " mb" + m);
        }
        assertThat(r.dispatch().events.subList(0, want.size())).containsExactlyElementsOf(want);
        assertThat(r.dispatch().awaited).isEqualTo(r.dispatch().started);
        assertThat(r.dispatch().abandoned).isZero();
        assertThat(r.engine().expertWaits().calls()).isEqualTo(2L * count * layers);
    }

    /**
     * A step whose micro-batches would give each routed expert fewer rows than the floor runs as one batch (one
     * expert call per layer), with the tokens and logits of no split; a floor of 0 splits as before.
     */
    @ParameterizedTest(name = "floor {0} rows per expert: {1} micro-batches")
    @CsvSource({"0, 2", "1000000, 1"})
    void stepBelowTheRowsPerExpertFloor_runsAsOneBatch_withTheSameLogits(int floor, int parts) {
        Run r = run(TestModels.MIXTRAL, new MicroBatching(2, 2, MicroBatchGrouping.CONTIGUOUS, floor), true);
        int layers = r.engine().config().numLayers();
        assertThat(r.engine().expertWaits().calls()).isEqualTo(2L * parts * layers);
        if (parts == 1) {
            assertThat(sameLogits(r, run(TestModels.MIXTRAL, MicroBatching.OFF, true))).isTrue();
        }
    }

    @ParameterizedTest(name = "fails in {0}")
    @ValueSource(strings = {"start", "await"})
    void failureInOneMicroBatch_failsTheStep_abandonsTheOther_neverCompletes(String where) {
        try (MoeModel model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL))) {
            ModelConfig c = model.config();
            RecordingDispatch dispatch = new RecordingDispatch(LocalExperts.fromStore(model.tensors(), c), c, true);
            dispatch.failLayer = 2;
            dispatch.failMicroBatch = 1;
            dispatch.failIn = where;
            Engine engine = new Engine(c, model.denseWeights(), dispatch, RouteObserver.NONE, LookaheadObserver.NONE,
                    RemoteAttention.NONE, new MicroBatching(2, 2));
            boolean[] completed = {false};
            KvCache cache = new ForwardingKvCache(model.newCache(256)) {
                @Override
                public void stepCompleted(StepContext context) {
                    completed[0] = true;
                }
            };
            assertThatThrownBy(() -> engine.step(workload(c).get(0), cache))
                    .isInstanceOf(IllegalStateException.class).hasMessage("instance down at layer 2");
            assertThat(completed[0]).isFalse();
            // Every handle that was started was awaited or abandoned: nothing left in flight.
            assertThat(dispatch.awaited + dispatch.abandoned).isEqualTo(dispatch.started);
            assertThat(dispatch.abandoned).isOne();
        }
    }

    private static int argmax(float[] a, int off, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) {
            if (a[off + i] > a[off + best]) {
                best = i;
            }
        }
        return best;
    }

    /**
     * Defers each call's work to {@code await} (as a remote dispatch does, so the engine must keep its inputs until
     * then), records the order of starts and awaits, and can fail one micro-batch's call at one layer. Row-wise:
     * each row through {@link LocalExperts} alone, so its result does not depend on the other rows.
     */
    private static final class RecordingDispatch implements ExpertDispatch {
        private final LocalExperts local;
        private final int hidden;
        private final boolean rowwise;
        final List<String> events = new ArrayList<>();
        int started;
        int awaited;
        int abandoned;
        int failLayer = -1;
        int failMicroBatch = -1;
        String failIn = "";
        /** First sequence id of each micro-batch seen in the current step: names micro-batches by position. */
        private final List<Long> firstIds = new ArrayList<>();

        RecordingDispatch(LocalExperts local, ModelConfig c, boolean rowwise) {
            this.local = local;
            this.hidden = c.hiddenSize();
            this.rowwise = rowwise;
        }

        @Override
        public void run(StepContext step, int layer, float[] x, int[] experts, float[] weights, int pairsPerToken,
                        float[] out) {
            if (!rowwise) {
                local.run(step, layer, x, experts, weights, pairsPerToken, out);
                return;
            }
            float[] xr = new float[hidden];
            float[] yr = new float[hidden];
            for (int t = 0; t < step.rows(); t++) {
                System.arraycopy(x, t * hidden, xr, 0, hidden);
                int[] e = java.util.Arrays.copyOfRange(experts, t * pairsPerToken, (t + 1) * pairsPerToken);
                float[] w = java.util.Arrays.copyOfRange(weights, t * pairsPerToken, (t + 1) * pairsPerToken);
                local.run(TestSteps.rows(1), layer, xr, e, w, pairsPerToken, yr);
                System.arraycopy(yr, 0, out, t * hidden, hidden);
            }
        }

        @Override
        public Pending start(StepContext step, int layer, float[] x, int[] experts, float[] weights, int pairsPerToken,
                             float[] out) {
            if (layer == 0 && !firstIds.isEmpty() && firstIds.get(0) == step.seqId(0)) {
                firstIds.clear();
            }
            if (layer == 0) {
                firstIds.add(step.seqId(0));
            }
            int mb = firstIds.indexOf(step.seqId(0));
            if (layer == failLayer && mb == failMicroBatch && failIn.equals("start")) {
                throw new IllegalStateException("instance down at layer " + layer);
            }
            events.add("start " + layer + " mb" + mb);
            started++;
            return new Pending() {
                @Override
                public void await() {
                    events.add("await " + layer + " mb" + mb);
                    awaited++;
                    if (layer == failLayer && mb == failMicroBatch && failIn.equals("await")) {
                        throw new IllegalStateException("instance down at layer " + layer);
                    }
                    run(step, layer, x, experts, weights, pairsPerToken, out);
                }

                @Override
                public void abandon() {
                    events.add("abandon " + layer + " mb" + mb);
                    abandoned++;
                }
            };
        }
    }
}
