package io.moemesh.model.generate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.HashSet;
import java.util.OptionalLong;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class SamplerTest {
    private static final float[] LOGITS = {0.1f, 2.0f, 1.9f, -3f, 0.5f, 1.0f, 1.95f, 0f};

    private static int[] draw(SamplingParams p, int n) {
        Sampler s = new Sampler(p);
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = s.sample(LOGITS, 0, LOGITS.length);
        }
        return out;
    }

    @Test
    void greedy_picksFirstMaximum() {
        assertThat(Sampler.argmax(new float[] {1, 3, 3, 2}, 0, 4)).isEqualTo(1);
        assertThat(draw(SamplingParams.greedy(1), 5)).containsOnly(1);
    }

    @Test
    void seeded_sameSeedSameTokens_differentSeedDifferentTokens() {
        SamplingParams a = new SamplingParams(1.0, 1, 0, OptionalLong.of(42), 1, false);
        SamplingParams b = new SamplingParams(1.0, 1, 0, OptionalLong.of(43), 1, false);
        assertThat(draw(a, 200)).containsExactly(draw(a, 200));
        assertThat(draw(a, 200)).isNotEqualTo(draw(b, 200));
    }

    @ParameterizedTest(name = "top_k={0} top_p={1}")
    @CsvSource({"1, 1.0, 1", "2, 1.0, 2", "3, 1.0, 3", "0, 0.01, 1", "0, 0.5, 3"})
    void topKAndTopP_restrictTheCandidates(int topK, double topP, int maxDistinct) {
        Set<Integer> seen = new HashSet<>();
        for (int t : draw(new SamplingParams(1.0, topP, topK, OptionalLong.of(7), 1, false), 2000)) {
            seen.add(t);
        }
        assertThat(seen).hasSizeLessThanOrEqualTo(maxDistinct).contains(1);
    }

    @ParameterizedTest
    @CsvSource({"-1, 1, 0, 1, temperature", "NaN, 1, 0, 1, temperature", "1, 0, 0, 1, top_p", "1, 1.5, 0, 1, top_p",
        "1, 1, -2, 1, top_k", "1, 1, 0, 0, max_tokens"})
    void invalidParams_failNamingTheParameter(double temperature, double topP, int topK, int maxTokens, String name) {
        assertThatThrownBy(() -> new SamplingParams(temperature, topP, topK, OptionalLong.empty(), maxTokens, false))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(name);
    }

    /** softmax(logits / T) tends to the argmax as T → 0; logits / T alone overflowed to Inf and gave NaN weights. */
    @ParameterizedTest(name = "T={0}")
    @ValueSource(doubles = {1e-30, 1e-38, 1e-40, Double.MIN_VALUE})
    void tinyPositiveTemperature_picksTheArgmax(double temperature) {
        for (long seed = 0; seed < 20; seed++) {
            assertThat(draw(new SamplingParams(temperature, 1, 0, OptionalLong.of(seed), 1, false), 5)).containsOnly(1);
            assertThat(draw(new SamplingParams(temperature, 0.9, 3, OptionalLong.of(seed), 1, false), 5)).containsOnly(1);
        }
    }
}
