package io.moemesh.model.generate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
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
        SamplerScratch w = new SamplerScratch();
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = s.sample(LOGITS, 0, LOGITS.length, w);
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

    /**
     * A NaN or +Inf logit comes from broken arithmetic: no token is drawn from the row (Inf - Inf made every weight
     * NaN and drew the last token; a NaN was skipped by the comparisons), greedy or sampled, full vocabulary, top-k
     * or top-p, whatever the seed.
     */
    @ParameterizedTest(name = "{0} T={1} top_p={2} top_k={3}")
    @CsvSource({
        "'0, Infinity, 1, 2, 3', 1, 0.9, 0, Infinity at token id 1",
        "'0, Infinity, 1, 2, 3', 1, 1, 3, Infinity at token id 1",
        "'0, Infinity, 1, 2, 3', 1, 1, 0, Infinity at token id 1",
        "'0, Infinity, 1, 2, 3', 0, 1, 0, Infinity at token id 1",
        "'0, 5, NaN, 2, 3', 1, 1, 0, NaN at token id 2",
        "'0, 5, NaN, 2, 3', 1, 0.9, 0, NaN at token id 2",
        "'0, 5, NaN, 2, 3', 1, 1, 3, NaN at token id 2",
        "'0, 5, NaN, 2, 3', 0, 1, 0, NaN at token id 2",
        "'NaN, 5, 1, 2, 3', 0, 1, 0, NaN at token id 0",
        "'-Infinity, -Infinity, -Infinity', 1, 1, 0, every one of the 3 is -Infinity",
        "'-Infinity, -Infinity, -Infinity', 0, 1, 0, every one of the 3 is -Infinity",
    })
    void nonFiniteLogits_areRefusedNamingTheToken(String row, double temperature, double topP, int topK,
                                                  String what) {
        String[] parts = row.split(",\\s*");
        float[] logits = new float[parts.length];
        for (int i = 0; i < parts.length; i++) {
            logits[i] = Float.parseFloat(parts[i]);
        }
        for (long seed = 0; seed < 20; seed++) {
            Sampler s = new Sampler(new SamplingParams(temperature, topP, topK, OptionalLong.of(seed), 1, false));
            assertThatThrownBy(() -> s.sample(logits, 0, logits.length, new SamplerScratch()))
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("not finite").hasMessageContaining(what);
        }
    }

    /** -Inf logits are masked tokens, not broken arithmetic: they are never drawn, and the rest of the row is. */
    @Test
    void negativeInfinityLogits_areNeverDrawn_andTheRowStillSamples() {
        float[] logits = {Float.NEGATIVE_INFINITY, 1, Float.NEGATIVE_INFINITY, 2};
        Set<Integer> seen = new HashSet<>();
        Sampler s = new Sampler(new SamplingParams(1.0, 1, 0, OptionalLong.of(3), 1, false));
        SamplerScratch w = new SamplerScratch();
        for (int i = 0; i < 500; i++) {
            seen.add(s.sample(logits, 0, logits.length, w));
        }
        assertThat(seen).containsExactlyInAnyOrder(1, 3);
        assertThat(Sampler.argmax(logits, 0, logits.length)).isEqualTo(3);
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

    /**
     * transformers' TopKLogitsWarper removes only {@code scores < topk_values[..., -1]}: every token tied with the
     * k-th score stays a candidate (here top_k=2 keeps the three tokens at 2.0, top_k=1 both maxima).
     */
    @ParameterizedTest(name = "top_k={0}")
    @CsvSource({"2, 0 1 2 3", "1, 0 1", "4, 0 1 2 3"})
    void topK_keepsEveryTokenTiedWithTheKthScore_asTopKLogitsWarper(int topK, String candidates) {
        float[] logits = topK == 1 ? new float[] {2.5f, 2.5f, 0f, -1f, -2f} : new float[] {3f, 2f, 2f, 2f, 1f};
        int[] expected = java.util.Arrays.stream(candidates.split(" ")).mapToInt(Integer::parseInt).toArray();
        Sampler s = new Sampler(new SamplingParams(1.0, 1, topK, OptionalLong.of(3), 1, false));
        Set<Integer> seen = new HashSet<>();
        SamplerScratch w = new SamplerScratch();
        for (int i = 0; i < 4000; i++) {
            seen.add(s.sample(logits, 0, logits.length, w));
        }
        assertThat(seen).containsExactlyInAnyOrder(java.util.Arrays.stream(expected).boxed().toArray(Integer[]::new));
    }

    /**
     * The tokens drawn for a seed are those of the earlier sampler, which sorted the whole vocabulary (regression
     * table recorded from it; no ties, so top-k means the same): the selection without a full sort changed the
     * work, not the draws. "wide" is 5,000 distinct logits, so top-p and the plain draw sort only a head of it.
     */
    @ParameterizedTest(name = "{0} T={1} top_p={2} top_k={3} seed={4}")
    @CsvSource({
        "small, 1.0, 1.0, 0, 42, 2 1 6 6 1 4 1 5 6 2 1 6",
        "small, 0.7, 1.0, 3, 7, 6 1 2 6 6 1 6 1 1 6 1 2",
        "small, 1.3, 0.8, 0, 1, 6 2 5 6 6 2 5 6 1 2 6 2",
        "small, 1.0, 0.9, 5, 99, 1 1 2 1 1 1 2 2 6 6 6 2",
        "wide, 1.0, 1.0, 0, 42, 1493 1474 2866 4374 1223 927 2426 1106 4751 4481 3485 4418",
        "wide, 0.6, 0.95, 0, 3, 1537 3683 2417 1223 2354 1798 3422 2479 1286 2479 4060 4939",
        "wide, 1.0, 1.0, 40, 11, 1537 846 4867 3108 1914 783 2291 1474 469 4688 1914 846",
        "wide, 2.0, 0.5, 100, 5, 3045 2605 4113 4176 3799 3736 981 3359 2731 1600 783 1914",
        "wide, 0.8, 0.99, 0, 2024, 334 3422 2049 3736 1493 657 2731 4562 4867 3296 2919 1116"})
    void seededDraws_withoutTies_areTheSameAsBefore(String logits, double temperature, double topP, int topK,
                                                    long seed, String expected) {
        float[] l = logits.equals("small") ? LOGITS : wideLogits();
        Sampler s = new Sampler(new SamplingParams(temperature, topP, topK, OptionalLong.of(seed), 1, false));
        SamplerScratch w = new SamplerScratch();
        int[] tokens = new int[12];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = s.sample(l, 0, l.length, w);
        }
        assertThat(tokens).containsExactly(
                java.util.Arrays.stream(expected.split(" ")).mapToInt(Integer::parseInt).toArray());
    }

    /**
     * Sequences sampled by one thread share one scratch (it held 24 × vocab bytes per sequence for the sequence's whole
     * life, 3.5 MiB at 151,936): interleaved through one scratch, each sampler draws exactly the tokens it draws alone
     * through a scratch of its own (its random state is its own, nothing in the scratch carries over), a smaller
     * vocabulary after a larger one included, and the scratch is allocated once, at the largest vocabulary.
     */
    @Test
    void sampledSequences_shareOneScratch_allocatedOnce_drawsUnchanged() {
        int vocab = 151_936;
        float[] big = new float[vocab];
        for (int i = 0; i < vocab; i++) {
            big[i] = (float) (6 * Math.sin(i * 0.37) + 2 * Math.cos(i * 1.9) + (i % 23) * 0.01);
        }
        float[] small = wideLogits();
        List<SamplingParams> params = new ArrayList<>();
        for (int q = 0; q < 16; q++) {
            params.add(new SamplingParams(0.6 + 0.1 * (q % 5), q % 3 == 0 ? 1 : 0.9, q % 4 == 0 ? 40 : 0,
                    OptionalLong.of(100 + q), 1, false));
        }
        int draws = 6;
        int[][] alone = new int[params.size()][draws];
        for (int q = 0; q < params.size(); q++) {
            Sampler s = new Sampler(params.get(q));
            SamplerScratch own = new SamplerScratch();
            for (int d = 0; d < draws; d++) {
                float[] l = d % 3 == 2 ? small : big;
                alone[q][d] = s.sample(l, 0, l.length, own);
            }
        }
        SamplerScratch shared = new SamplerScratch();
        List<Sampler> samplers = params.stream().map(Sampler::new).toList();
        int[][] interleaved = new int[params.size()][draws];
        for (int d = 0; d < draws; d++) {
            for (int q = 0; q < samplers.size(); q++) {
                float[] l = d % 3 == 2 ? small : big;
                interleaved[q][d] = samplers.get(q).sample(l, 0, l.length, shared);
            }
        }
        assertThat(interleaved).isDeepEqualTo(alone);
        assertThat(shared.allocations()).isEqualTo(1);
        assertThat(shared.bytes()).isEqualTo(24L * vocab);
    }

    private static float[] wideLogits() {
        float[] l = new float[5000];
        for (int i = 0; i < l.length; i++) {
            l[i] = (float) (8 * Math.sin(i * 0.7) + 3 * Math.cos(i * 1.3) + (i % 17) * 0.01);
        }
        return l;
    }
}
