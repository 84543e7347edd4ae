package io.moemesh.model.engine;

import io.moemesh.model.kernel.Matrix;

/**
 * The dense (gateway-side) weights of one decoder layer. Small vectors are widened to float32 once.
 *
 * @param qBias          [q_dim] or null (Qwen2-MoE only)
 * @param qNorm          [num_heads · head_dim] or null (OLMoE only)
 * @param kNorm          [num_kv_heads · head_dim] or null (OLMoE only)
 * @param router         [num_experts, hidden]
 * @param sharedGate     [1, hidden] or null: the shared expert's sigmoid gate (Qwen2-MoE)
 */
public record LayerWeights(
        float[] inputNorm,
        Matrix q, Matrix k, Matrix v, Matrix o,
        float[] qBias, float[] kBias, float[] vBias,
        float[] qNorm, float[] kNorm,
        float[] postAttentionNorm,
        Matrix router,
        Matrix sharedGate) {
}
