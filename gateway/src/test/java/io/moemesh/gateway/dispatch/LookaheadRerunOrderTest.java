package io.moemesh.gateway.dispatch;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepContext;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A step run again without a sequence whose remote attention failed is scored once, whatever order the re-run lists
 * its sequences in (micro-batch grouping may order the rows of the two passes differently); a step of new
 * SequenceSteps is always scored.
 */
class LookaheadRerunOrderTest {
    private static final int TOP_K = 2;

    private static long scoreLayer1(LookaheadPrefetch p, StepContext ctx) {
        int rows = ctx.rows();
        p.onLookahead(ctx, 1, new int[rows * TOP_K], new float[rows * TOP_K], TOP_K);
        p.onRoutes(ctx, 1, new int[rows * TOP_K], new float[rows * TOP_K], TOP_K);
        return p.trueExperts();
    }

    @ParameterizedTest(name = "re-run in the {0} order")
    @ValueSource(strings = {"same", "other"})
    void rerunWithoutAFailedSequence_isScoredOnce_inAnyOrder(String order) {
        SequenceStep a = SequenceStep.decode(1, 5, 10, "t");
        SequenceStep b = SequenceStep.decode(2, 6, 10, "t");
        SequenceStep c = SequenceStep.decode(3, 7, 10, "t");
        LookaheadPrefetch prefetch = new LookaheadPrefetch(null, TOP_K, TOP_K, -1, 4);

        long failedPass = scoreLayer1(prefetch, StepContext.of(List.of(b, a, c)));
        long afterRerun = scoreLayer1(prefetch, StepContext.of(order.equals("same") ? List.of(b, a) : List.of(a, b)));

        assertThat(failedPass).isEqualTo(3 * TOP_K);
        assertThat(afterRerun).as("layer 1 of the step counted once").isEqualTo(failedPass);
    }

    @ParameterizedTest(name = "next step of {0} sequences")
    @ValueSource(ints = {1, 2, 3})
    void nextStepOfNewSequenceSteps_isScored(int sequences) {
        LookaheadPrefetch prefetch = new LookaheadPrefetch(null, TOP_K, TOP_K, -1, 4);
        scoreLayer1(prefetch, StepContext.of(List.of(SequenceStep.decode(1, 5, 10, "t"),
                SequenceStep.decode(2, 6, 10, "t"), SequenceStep.decode(3, 7, 10, "t"))));

        List<SequenceStep> next = List.of(SequenceStep.decode(1, 8, 11, "t"), SequenceStep.decode(2, 9, 11, "t"),
                SequenceStep.decode(3, 4, 11, "t")).subList(0, sequences);
        long after = scoreLayer1(prefetch, StepContext.of(next));

        assertThat(after).isEqualTo((3L + sequences) * TOP_K);
    }
}
