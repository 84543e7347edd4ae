package io.moemesh.model.config;

import java.util.List;
import java.util.Optional;

/**
 * What the engine needs of a Hugging Face {@code config.json}, validated. Sizes are in elements.
 *
 * @param expertIntermediateSize       inner size of one routed expert's SwiGLU FFN
 * @param sharedExpertIntermediateSize inner size of the always-on shared expert (Qwen2-MoE), 0 when none
 * @param normTopKProb                 renormalise the top-k router probabilities to sum to 1
 * @param attentionBias                q/k/v projections carry a bias (Qwen2-MoE)
 * @param qkNorm                       RMSNorm over the whole q and k projections before the head split (OLMoE)
 * @param bosTokenId                   prepended to prompts that do not start with it; empty when unset
 * @param eosTokenIds                  generation stops on any of them
 * @param dtype                        the checkpoint's declared weight dtype (weights stay in it in memory)
 */
public record ModelConfig(
        Architecture architecture,
        int hiddenSize,
        int expertIntermediateSize,
        int sharedExpertIntermediateSize,
        int numLayers,
        int numHeads,
        int numKvHeads,
        int headDim,
        int vocabSize,
        int maxPositionEmbeddings,
        double rmsNormEps,
        double ropeTheta,
        int numExperts,
        int topK,
        boolean normTopKProb,
        boolean attentionBias,
        boolean qkNorm,
        boolean tieWordEmbeddings,
        Optional<Integer> bosTokenId,
        List<Integer> eosTokenIds,
        String dtype) {

    public ModelConfig {
        eosTokenIds = List.copyOf(eosTokenIds);
    }

    public int qDim() {
        return numHeads * headDim;
    }

    public int kvDim() {
        return numKvHeads * headDim;
    }

    public boolean hasSharedExpert() {
        return sharedExpertIntermediateSize > 0;
    }

    /**
     * Expert ids a token can be dispatched to: the routed experts 0..numExperts-1 and, for Qwen2-MoE, the
     * shared expert as id {@code numExperts} (so the mesh serves it like any other expert).
     */
    public int dispatchableExperts() {
        return numExperts + (hasSharedExpert() ? 1 : 0);
    }

    /** Expert pairs per token on the wire: top-k plus the shared expert when present. */
    public int pairsPerToken() {
        return topK + (hasSharedExpert() ? 1 : 0);
    }
}
