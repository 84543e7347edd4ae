package io.moemesh.model.generate;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.MoeModel;
import io.moemesh.model.ModelFormatException;
import io.moemesh.model.engine.ExpertDispatch;
import io.moemesh.model.engine.PagedKvCache;
import io.moemesh.model.engine.RemoteAttentionException;
import io.moemesh.model.golden.TestModels;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A step's forward pass that fails ends every sequence of the step with the server's failure: an exception the
 * services would read as the caller's mistake (400 / INVALID_ARGUMENT, its message on the wire) or a refused
 * precondition reaches them as a {@link StepFailedException}; the failures a server maps by their own type keep it.
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
}
