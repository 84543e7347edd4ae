package io.moemesh.gateway.dispatch;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * {@link LayerReplies} sums an instance's replies in the order of their first pair, so a retry or a hedge landing
 * before an earlier call of the same instance leaves the layer's output bit for bit the same (float addition is not
 * associative: 1e8 + (-1e8) + 1 is 1, 1e8 + 1 + (-1e8) is 0).
 */
class LayerRepliesTest {
    private record Reply(int inst, int firstPair, float value) {
    }

    private static float sum(List<Reply> arrival) {
        LayerReplies replies = new LayerReplies(2, 1);
        for (Reply r : arrival) {
            replies.add(r.inst(), new float[] {r.value()}, new int[] {0}, r.firstPair());
        }
        float[] out = new float[1];
        replies.sumInto(out, 1);
        return out[0];
    }

    @Test
    void sum_isTheSame_whateverOrderAnInstancesRepliesArrive() {
        Reply big = new Reply(0, 0, 1e8f);
        Reply minusBig = new Reply(0, 3, -1e8f);
        Reply one = new Reply(0, 7, 1f);
        Reply other = new Reply(1, 1, 0.5f);
        float expected = sum(List.of(big, minusBig, one, other));
        assertThat(expected).as("pair order: 1e8 - 1e8 + 1, then instance 1's 0.5").isEqualTo(1.5f);
        for (List<Reply> arrival : List.of(List.of(one, big, other, minusBig), List.of(big, one, minusBig, other),
                List.of(other, minusBig, one, big))) {
            assertThat(sum(arrival)).as("arrival " + arrival).isEqualTo(expected);
        }
    }
}
