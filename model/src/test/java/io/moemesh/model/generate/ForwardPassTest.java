package io.moemesh.model.generate;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.MoeModel;
import io.moemesh.model.engine.PagedKvCache;
import io.moemesh.model.golden.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@link StepScheduler#step()} is true whenever something changed, {@link StepScheduler#lastStepRanForwardPass()}
 * only when the engine ran: a step that only ends or cancels sequences is no forward pass, and a count of steps
 * that counted it skewed every per-step ratio (micro-batches per step).
 */
class ForwardPassTest {
    private static MoeModel model;

    @BeforeAll
    static void open() {
        model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private static final SequenceListener IGNORED = new SequenceListener() {
        @Override
        public void onToken(int token) {
        }

        @Override
        public void onFinish(GenerationResult result) {
        }

        @Override
        public void onError(Throwable error) {
        }
    };

    private static GenerationRequest request(String prompt) {
        return new GenerationRequest(model.encodePrompt(prompt), SamplingParams.greedy(20), false);
    }

    @Test
    void stepThatOnlyEndsAStoppedSequence_changedSomething_butRanNoForwardPass() {
        PagedKvCache cache = model.newCache(256);
        StepScheduler scheduler = new StepScheduler(model.localEngine(), cache, 64, 8);
        StepScheduler.Handle h = scheduler.submit(request("hello"), IGNORED);

        assertThat(scheduler.step()).isTrue();
        assertThat(scheduler.lastStepRanForwardPass()).as("prefill and first token").isTrue();
        h.stop();
        assertThat(scheduler.step()).as("the sequence ended").isTrue();
        assertThat(scheduler.lastStepRanForwardPass()).isFalse();
        assertThat(scheduler.idle()).isTrue();
        assertThat(scheduler.step()).isFalse();
        assertThat(scheduler.lastStepRanForwardPass()).isFalse();
    }

    @Test
    void stepThatOnlyDropsACancelledQueuedSequence_ranNoForwardPass() {
        StepScheduler scheduler = new StepScheduler(model.localEngine(), model.newCache(256), 64, 8);
        scheduler.submit(request("queued"), IGNORED).cancel();

        assertThat(scheduler.step()).isTrue();
        assertThat(scheduler.lastStepRanForwardPass()).isFalse();
        assertThat(scheduler.idle()).isTrue();
    }
}
