package io.moemesh.expert.support;

import io.moemesh.expert.backend.BatchInput;
import io.moemesh.model.config.ModelConfig;
import java.util.Random;

/**
 * Random tokens routed like the real engine routes them: top-k distinct routed experts per token with positive
 * weights, plus the shared expert (id num_experts) when the model has one, in the uniform layout of
 * {@code ExpertDispatch.run} (pairsPerToken per token).
 */
public record Routing(int layer, int tokens, int pairsPerToken, float[] x, int[] experts, float[] weights) {

    public static Routing random(ModelConfig c, int layer, int tokens, long seed) {
        Random r = new Random(seed);
        int p = c.pairsPerToken();
        float[] x = new float[tokens * c.hiddenSize()];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        int[] experts = new int[tokens * p];
        float[] weights = new float[tokens * p];
        for (int t = 0; t < tokens; t++) {
            int[] perm = r.ints(0, c.numExperts()).distinct().limit(c.topK()).toArray();
            for (int j = 0; j < c.topK(); j++) {
                experts[t * p + j] = perm[j];
                weights[t * p + j] = 0.1f + r.nextFloat();
            }
            if (c.hasSharedExpert()) {
                experts[t * p + c.topK()] = c.numExperts();
                weights[t * p + c.topK()] = r.nextFloat();
            }
        }
        return new Routing(layer, tokens, p, x, experts, weights);
    }

    public int[] counts() {
        int[] counts = new int[tokens];
        java.util.Arrays.fill(counts, pairsPerToken);
        return counts;
    }

    public BatchInput input() {
        return new BatchInput(layer, tokens, x, counts(), experts, weights);
    }
}
