package io.moemesh.model.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.golden.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class RouterTest {
    /** mixtral-tiny: 8 experts, top-2, renormalised. */
    private static final ModelConfig MIXTRAL = ModelConfigReader.read(TestModels.dir(TestModels.MIXTRAL));

    /**
     * A NaN or +Inf logit, or an all -Inf row, makes torch's softmax NaN everywhere: no expert can be chosen, and
     * the old code wrote expert id -1, which failed later with an ArrayIndexOutOfBoundsException far from the cause.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"NaN at 0", "NaN at 5", "+Inf at 3", "all -Inf"})
    void nonFiniteRouterLogits_failNamingTheLayer(String row) {
        float[] logits = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
        switch (row) {
            case "NaN at 0" -> logits[0] = Float.NaN;
            case "NaN at 5" -> logits[5] = Float.NaN;
            case "+Inf at 3" -> logits[3] = Float.POSITIVE_INFINITY;
            default -> java.util.Arrays.fill(logits, Float.NEGATIVE_INFINITY);
        }
        assertThatThrownBy(() -> new Router(MIXTRAL).route(3, logits, 0, new int[2], new float[2], 0))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("router logits of layer 3 are not finite");
    }

    /**
     * Exactly equal probabilities go to the lower expert id first, whatever their place among the others: the rule is
     * ours (torch.topk leaves the order of ties unspecified).
     */
    @Test
    void exactTies_routeToTheLowerExpertIdFirst() {
        float[] logits = {0.1f, 0.7f, 0.2f, 0.7f, 0.3f, 0.7f, 0.4f, 0.5f};
        int[] experts = new int[2];
        float[] weights = new float[2];
        new Router(MIXTRAL).route(0, logits, 0, experts, weights, 0);
        assertThat(experts).containsExactly(1, 3);
        assertThat(weights[0]).isEqualTo(weights[1]).isEqualTo(0.5f);

        float[] tiedWithSecond = {0.9f, 0.2f, 0.6f, 0.2f, 0.6f, 0.6f, 0.1f, 0.3f};
        new Router(MIXTRAL).route(0, tiedWithSecond, 0, experts, weights, 0);
        assertThat(experts).containsExactly(0, 2);
    }

    /** One -Inf among finite logits is a probability of 0 in torch's softmax, not an error. */
    @Test
    void oneNegativeInfiniteLogit_isRoutedAsTorchDoes() {
        float[] logits = {Float.NEGATIVE_INFINITY, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.9f, 0.8f};
        int[] experts = new int[2];
        float[] weights = new float[2];
        new Router(MIXTRAL).route(0, logits, 0, experts, weights, 0);
        assertThat(experts).containsExactly(6, 7);
        assertThat(weights[0] + weights[1]).isCloseTo(1f, org.assertj.core.data.Offset.offset(1e-6f));
    }
}
