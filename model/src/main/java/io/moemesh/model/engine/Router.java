package io.moemesh.model.engine;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.kernel.VectorOps;

/**
 * The true gate of an MoE layer, as the published transformers code computes it: softmax over all experts
 * in float32, top-k, then renormalised to sum to one when the architecture does (Mixtral always; Qwen2-MoE and
 * OLMoE only with {@code norm_topk_prob}). Of experts with exactly equal probabilities the lower expert id is
 * taken first, deterministically. torch.topk does not promise an order among ties: its CPU kernel
 * (aten/src/ATen/native/TopKImpl.h) selects with std::nth_element whenever k · 64 > n (Mixtral's 2 of 8 experts,
 * OLMoE's 8 of 64), so on an exact tie transformers may route to another expert than this does.
 */
public final class Router {
    private final int experts;
    private final int topK;
    private final boolean renormalise;

    public Router(ModelConfig config) {
        this.experts = config.numExperts();
        this.topK = config.topK();
        this.renormalise = config.normTopKProb();
    }

    /**
     * Routes one token: {@code logits[lo, lo + E)} are the router logits (turned into probabilities in place);
     * writes expert ids by descending probability and their weights at {@code outOff}.
     *
     * @param layer the decoder layer, only to name it when the logits are not finite
     * @throws IllegalStateException when the row has a NaN or +Inf logit, or is all -Inf (NaN or overflowing
     *     weights upstream): softmax is then NaN everywhere, as torch's is, no expert compares greater, and an
     *     expert id of -1 would fail far from the cause. A single -Inf among finite logits is routed as torch does.
     */
    public void route(int layer, float[] logits, int lo, int[] outExperts, float[] outWeights, int outOff) {
        VectorOps.softmax(logits, lo, experts);
        for (int j = 0; j < topK; j++) {
            int best = -1;
            float bestP = Float.NEGATIVE_INFINITY;
            for (int e = 0; e < experts; e++) {
                float p = logits[lo + e];
                if (p > bestP && !taken(outExperts, outOff, j, e)) {
                    best = e;
                    bestP = p;
                }
            }
            if (best < 0) {
                throw new IllegalStateException("router logits of layer " + layer
                        + " are not finite (NaN weights?): softmax over them is NaN, no expert can be chosen");
            }
            outExperts[outOff + j] = best;
            outWeights[outOff + j] = bestP;
        }
        if (renormalise) {
            float sum = 0f;
            for (int j = 0; j < topK; j++) {
                sum += outWeights[outOff + j];
            }
            for (int j = 0; j < topK; j++) {
                outWeights[outOff + j] /= sum;
            }
        }
    }

    private static boolean taken(int[] chosen, int off, int n, int e) {
        for (int j = 0; j < n; j++) {
            if (chosen[off + j] == e) {
                return true;
            }
        }
        return false;
    }
}
