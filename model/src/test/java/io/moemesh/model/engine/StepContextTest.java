package io.moemesh.model.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import org.junit.jupiter.api.Test;

class StepContextTest {

    @Test
    void rows_followTheBatchOrder_withEachSequencesPositionsTokensTenantAndPhase() {
        StepContext ctx = StepContext.of(List.of(
                SequenceStep.decode(7, 42, 19, "acme"),
                new SequenceStep(3, new int[] {5, 6, 8}, 16, SequenceStep.Logits.LAST, true, "globex",
                        SequenceStep.Phase.PREFILL)));
        assertThat(ctx.rows()).isEqualTo(4);
        assertThat(List.of(ctx.seqId(0), ctx.seqId(1), ctx.seqId(2), ctx.seqId(3))).containsExactly(7L, 3L, 3L, 3L);
        assertThat(new int[] {ctx.position(0), ctx.position(1), ctx.position(2), ctx.position(3)})
                .containsExactly(19, 16, 17, 18);
        assertThat(new int[] {ctx.token(0), ctx.token(1), ctx.token(2), ctx.token(3)}).containsExactly(42, 5, 6, 8);
        assertThat(ctx.tenant(0)).isEqualTo("acme");
        assertThat(ctx.tenant(3)).isEqualTo("globex");
        assertThat(ctx.prefill(0)).isFalse();
        assertThat(ctx.prefill(1)).isTrue();
        assertThat(ctx.traced(0)).isFalse();
        assertThat(ctx.traced(2)).isTrue();
        assertThat(ctx.sequenceIndex(2)).isEqualTo(1);
    }

    @Test
    void theSameSequenceTwiceInOneStep_isRefused() {
        assertThatThrownBy(() -> StepContext.of(List.of(SequenceStep.decode(1, 2, 3), SequenceStep.decode(1, 4, 4))))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("sequence 1 appears twice");
    }

    @Test
    void decodeSteps_haveOneToken_andEveryStepATenantAndPhase() {
        assertThatThrownBy(() -> new SequenceStep(1, new int[] {1, 2}, 0, SequenceStep.Logits.LAST, false, "",
                SequenceStep.Phase.DECODE)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("one token");
        assertThatThrownBy(() -> new SequenceStep(1, new int[] {1}, 0, SequenceStep.Logits.LAST, false, null,
                SequenceStep.Phase.PREFILL)).isInstanceOf(IllegalArgumentException.class);
        assertThat(StepContext.of(List.of()).rows()).isZero();
    }
}
