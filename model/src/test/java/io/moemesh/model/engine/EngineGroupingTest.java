package io.moemesh.model.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.MoeModel;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.SequenceListener;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.kernel.MatMul;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Micro-batches grouped by predicted expert path ({@link PredictedPathGrouping}): the engine runs a step in the
 * grouped order and maps every output back to its sequence, so tokens equal the reference's and those of the
 * contiguous split and of one batch; and the grouping does reorder (the observers see the grouped order).
 */
class EngineGroupingTest {
    private static final MicroBatching GROUPED = new MicroBatching(2, 2, MicroBatchGrouping.PREDICTED_PATH);

    @BeforeAll
    static void warm() {
        MatMul.warmUp();
    }

    /** Each step's sequence ids in the order the route observer saw them (once per step, at layer 0). */
    private record Generation(List<int[]> tokens, List<List<Long>> stepOrders) {
    }

    /** Every golden prompt twice (twins take the same path), all submitted at once, greedy. */
    private static Generation goldenTwins(String name, MicroBatching mb) {
        List<GoldenCase> cases = GoldenCase.load(name);
        try (MoeModel model = MoeModel.open(TestModels.dir(name))) {
            ModelConfig c = model.config();
            List<List<Long>> orders = new ArrayList<>();
            RouteObserver order = (step, layer, experts, weights, pairs) -> {
                if (layer == 0) {
                    orders.add(step.sequences().stream().map(SequenceStep::seqId).toList());
                }
            };
            Engine engine = new Engine(c, model.denseWeights(), LocalExperts.fromStore(model.tensors(), c), order,
                    LookaheadObserver.NONE, RemoteAttention.NONE, mb);
            // A step budget of 48 tokens: prompts are prefilled in chunks next to the first decodes.
            StepScheduler scheduler = new StepScheduler(engine, model.newCache(2048), 48, 16);
            List<CompletableFuture<GenerationResult>> done = new ArrayList<>();
            for (int twin = 0; twin < 2; twin++) {
                for (GoldenCase g : cases) {
                    CompletableFuture<GenerationResult> f = new CompletableFuture<>();
                    done.add(f);
                    scheduler.submit(new GenerationRequest(g.inputIds(), SamplingParams.greedy(g.greedyIds().length),
                            false), listener(f));
                }
            }
            while (done.stream().anyMatch(f -> !f.isDone()) && scheduler.step()) {
                // one engine step per iteration
            }
            return new Generation(done.stream().map(f -> f.join().generatedIds()).toList(), orders);
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {TestModels.MIXTRAL, TestModels.MIXTRAL_BF16, TestModels.QWEN2_MOE})
    void goldenPromptsTogether_groupedByPredictedPath_giveTheReferenceTokens(String name) {
        List<GoldenCase> cases = GoldenCase.load(name);
        Generation grouped = goldenTwins(name, GROUPED);
        Generation contiguous = goldenTwins(name, new MicroBatching(2, 2));
        Generation one = goldenTwins(name, MicroBatching.OFF);
        for (int i = 0; i < grouped.tokens().size(); i++) {
            GoldenCase g = cases.get(i % cases.size());
            assertThat(grouped.tokens().get(i)).as("%s (twin %d)", g, i / cases.size()).containsExactly(g.greedyIds());
            assertThat(contiguous.tokens().get(i)).containsExactly(g.greedyIds());
            assertThat(one.tokens().get(i)).containsExactly(g.greedyIds());
        }
        // The grouping changed the order of some steps (else this test would prove nothing): the scheduler's order
        // is what the contiguous run's observer saw.
        assertThat(grouped.stepOrders()).hasSameSizeAs(contiguous.stepOrders());
        long reordered = 0;
        for (int s = 0; s < grouped.stepOrders().size(); s++) {
            List<Long> g = grouped.stepOrders().get(s);
            List<Long> c = contiguous.stepOrders().get(s);
            assertThat(g).containsExactlyInAnyOrderElementsOf(c);
            reordered += g.equals(c) ? 0 : 1;
        }
        assertThat(reordered).as("steps run in another order than the batch's").isPositive();
    }

    /**
     * Eight prompts prefilled, then three decode steps of all eight with a new prompt joining the second: every
     * output (logits, traced routes) belongs to the sequence it is returned for and the KV written in grouped order
     * is read back right (the later steps' logits), against one batch per step.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {TestModels.MIXTRAL, TestModels.QWEN2_MOE})
    void groupedSteps_mapEveryOutputBackToItsSequence(String name) {
        List<List<StepOutput>> one = steps(name, MicroBatching.OFF);
        List<List<StepOutput>> grouped = steps(name, GROUPED);
        for (int s = 0; s < one.size(); s++) {
            for (int i = 0; i < one.get(s).size(); i++) {
                StepOutput a = one.get(s).get(i);
                StepOutput b = grouped.get(s).get(i);
                assertThat(b.seqId()).isEqualTo(a.seqId());
                assertThat(b.routes()).as("step %d sequence %d", s, a.seqId()).isDeepEqualTo(a.routes());
                assertThat(b.logits()).hasSameSizeAs(a.logits());
                for (int j = 0; j < a.logits().length; j++) {
                    assertThat(Math.abs(b.logits()[j] - a.logits()[j])).as("step %d sequence %d", s, a.seqId())
                            .isLessThanOrEqualTo(1e-5f);
                }
            }
        }
    }

    private static List<List<StepOutput>> steps(String name, MicroBatching mb) {
        try (MoeModel model = MoeModel.open(TestModels.dir(name))) {
            ModelConfig c = model.config();
            Engine engine = new Engine(c, model.denseWeights(), LocalExperts.fromStore(model.tensors(), c),
                    RouteObserver.NONE, LookaheadObserver.NONE, RemoteAttention.NONE, mb);
            PagedKvCache cache = model.newCache(512);
            List<List<StepOutput>> out = new ArrayList<>();
            List<SequenceStep> prefill = new ArrayList<>();
            for (int s = 0; s < 8; s++) {
                int[] tokens = new int[3 + s % 3];
                for (int i = 0; i < tokens.length; i++) {
                    tokens[i] = (17 + 37 * s + 11 * i) % c.vocabSize();
                }
                prefill.add(new SequenceStep(s + 1, tokens, 0, SequenceStep.Logits.LAST, s == 5));
            }
            out.add(engine.step(prefill, cache));
            for (int step = 0; step < 3; step++) {
                List<SequenceStep> decodes = new ArrayList<>();
                for (int s = 0; s < 8; s++) {
                    float[] last = out.getLast().get(s).logits();
                    int token = argmax(last, last.length - c.vocabSize(), c.vocabSize());
                    decodes.add(new SequenceStep(s + 1, new int[] {token}, prefill.get(s).tokens().length + step,
                            SequenceStep.Logits.LAST, s % 3 == 0, "", SequenceStep.Phase.DECODE));
                }
                if (step == 1) {
                    decodes.add(new SequenceStep(20, new int[] {3, 1, 4, 1, 5}, 0, SequenceStep.Logits.ALL, true));
                }
                out.add(engine.step(decodes, cache));
            }
            return out;
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

    private static SequenceListener listener(CompletableFuture<GenerationResult> done) {
        return new SequenceListener() {
            @Override
            public void onToken(int token) {
            }

            @Override
            public void onFinish(GenerationResult result) {
                done.complete(result);
            }

            @Override
            public void onError(Throwable error) {
                done.completeExceptionally(error);
            }
        };
    }
}
