package io.moemesh.model.engine;

import java.util.List;

/** Step contexts for tests that call an {@link ExpertDispatch} directly, outside an engine step. */
public final class TestSteps {
    private TestSteps() {
    }

    /** {@code rows} prefill rows of one sequence (tokens 0, positions 0..rows-1). */
    public static StepContext rows(int rows) {
        return StepContext.of(List.of(new SequenceStep(1, new int[rows], 0, SequenceStep.Logits.NONE, false)));
    }
}
