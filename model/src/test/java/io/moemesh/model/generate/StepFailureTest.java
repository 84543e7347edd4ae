package io.moemesh.model.generate;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.MoeModel;
import io.moemesh.model.ModelFormatException;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.engine.ExpertDispatch;
import io.moemesh.model.engine.LocalExperts;
import io.moemesh.model.engine.PagedKvCache;
import io.moemesh.model.engine.RemoteAttentionException;
import io.moemesh.model.golden.TestModels;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.CancellationException;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A step's forward pass that fails ends every sequence of the step with the server's failure: an exception the
 * services would read as the caller's mistake (400 / INVALID_ARGUMENT, its message on the wire) or a refused
 * precondition reaches them as a {@link StepFailedException}; the failures a server maps by their own type keep it.
 * One sequence whose logits the pass made not finite ends with one too, and only it.
 */
class StepFailureTest {
    private static MoeModel model;

    @BeforeAll
    static void open() {
        model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    /** What one sequence's listener was told. */
    private static final class Events implements SequenceListener {
        final List<Object> seen = new ArrayList<>();

        @Override
        public void onToken(int token) {
            seen.add(token);
        }

        @Override
        public void onFinish(GenerationResult result) {
            seen.add(result);
        }

        @Override
        public void onError(Throwable error) {
            seen.add(error);
        }
    }

    /** Runs one step of two sequences with experts that throw {@code failure}; what each sequence was told. */
    private static List<Events> stepWithExpertsThrowing(RuntimeException failure) {
        ExpertDispatch failing = (step, layer, x, experts, weights, pairsPerToken, out) -> {
            throw failure;
        };
        PagedKvCache cache = model.newCache(256);
        StepScheduler scheduler = new StepScheduler(model.engine(failing), cache, 64, 8);
        List<Events> events = List.of(new Events(), new Events());
        scheduler.submit(new GenerationRequest(model.encodePrompt("hello"), SamplingParams.greedy(4), false),
                events.get(0));
        scheduler.submit(new GenerationRequest(model.encodePrompt("world"), SamplingParams.greedy(4), false),
                events.get(1));
        assertThat(scheduler.step()).isTrue();
        assertThat(scheduler.lastStepRanForwardPass()).as("a failed pass is a pass").isTrue();
        assertThat(scheduler.idle()).isTrue();
        assertThat(cache.freeBlocks()).isEqualTo(cache.totalBlocks());
        return events;
    }

    @Test
    void brokenExpertTensorMidStep_endsEverySequenceWithAStepFailure_notAsTheirMistake() {
        ModelFormatException broken = new ModelFormatException("/srv/models/m/model.safetensors.index.json: tensor "
                + "model.layers.0.block_sparse_moe.experts.3.w2.weight is missing");
        for (Events e : stepWithExpertsThrowing(broken)) {
            assertThat(e.seen).singleElement().isInstanceOfSatisfying(StepFailedException.class, f -> {
                assertThat(f).isNotInstanceOf(IllegalArgumentException.class).isNotInstanceOf(IllegalStateException.class)
                        .hasCause(broken).hasMessageContaining("experts.3.w2.weight is missing");
                assertThat(f.getCause()).isSameAs(broken);
            });
        }
    }

    @Test
    void failedPrecondition_insideTheStep_isAStepFailureToo() {
        IllegalStateException bug = new IllegalStateException("router logits of layer 1 are not finite");
        for (Events e : stepWithExpertsThrowing(bug)) {
            assertThat(e.seen).singleElement().isInstanceOf(StepFailedException.class);
            assertThat(((Throwable) e.seen.getFirst()).getCause()).isSameAs(bug);
        }
    }

    static Stream<RuntimeException> mappedByTheirOwnType() {
        return Stream.of(new RemoteAttentionException("layer 0: remote attention failed", null),
                new CancellationException("the call was cancelled"), new NullPointerException("a bug"),
                new RuntimeException("an expert has no healthy replica"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("mappedByTheirOwnType")
    void otherFailures_reachTheSequencesAsThemselves(RuntimeException failure) {
        for (Events e : stepWithExpertsThrowing(failure)) {
            assertThat(e.seen).singleElement().isSameAs(failure);
        }
    }

    /**
     * A sequence whose logits turn NaN (here its last layer's expert rows, as a broken kernel or replica would; at an
     * earlier layer the next router refuses the step) ends with an error naming it and the token, instead of a token
     * drawn from NaN weights; the other sequence of the same steps runs to its end. (Its tokens are not compared with
     * a run alone: batched, they may differ in last bits, docs/engine.md.) The error is the
     * engine's failure ({@link StepFailedException}: HTTP 500 / gRPC INTERNAL, logged), not the sampler's
     * IllegalStateException, which the services map to FAILED_PRECONDITION as if the request were at fault.
     */
    @ParameterizedTest(name = "poisoned sequence greedy={0}")
    @ValueSource(booleans = {true, false})
    void nonFiniteLogits_failOnlyTheirOwnSequence_asTheEnginesFailure_theOthersInTheStepContinue(boolean greedy) {
        ModelConfig c = model.config();
        LocalExperts local = LocalExperts.fromStore(model.tensors(), c);
        long[] poisoned = {-1};
        ExpertDispatch poisoning = (step, layer, x, experts, weights, pairsPerToken, out) -> {
            local.run(step, layer, x, experts, weights, pairsPerToken, out);
            for (int row = 0; row < step.rows(); row++) {
                if (step.seqId(row) == poisoned[0] && layer == c.numLayers() - 1) {
                    java.util.Arrays.fill(out, row * c.hiddenSize(), (row + 1) * c.hiddenSize(), Float.NaN);
                }
            }
        };
        PagedKvCache cache = model.newCache(512);
        StepScheduler scheduler = new StepScheduler(model.engine(poisoning), cache, 64, 8);
        GenerationRequest fineRequest = new GenerationRequest(model.encodePrompt("world"),
                new SamplingParams(0.9, 0.95, 0, OptionalLong.of(5), 6, true), false);
        SamplingParams badParams = greedy ? SamplingParams.greedy(6)
                : new SamplingParams(1.0, 0.9, 3, OptionalLong.of(1), 6, true);
        Events broken = new Events();
        Events fine = new Events();
        poisoned[0] = scheduler.submit(new GenerationRequest(model.encodePrompt("hello"), badParams, false), broken)
                .sequenceId();
        scheduler.submit(fineRequest, fine);
        for (int i = 0; i < 20 && !scheduler.idle(); i++) {
            scheduler.step();
        }
        assertThat(broken.seen).singleElement().isInstanceOfSatisfying(StepFailedException.class,
                e -> assertThat(e).isNotInstanceOf(IllegalStateException.class)
                        .hasMessageContaining("sequence " + poisoned[0]).hasMessageContaining("not finite")
                        .hasMessageContaining("NaN at token id 0").hasCauseInstanceOf(IllegalStateException.class));
        assertThat(fine.seen).noneMatch(Throwable.class::isInstance);
        assertThat(fine.seen.getLast()).isInstanceOfSatisfying(GenerationResult.class,
                r -> assertThat(r.generatedIds()).hasSize(6));
        assertThat(scheduler.idle()).isTrue();
        assertThat(cache.freeBlocks()).isEqualTo(cache.totalBlocks());
    }
}
