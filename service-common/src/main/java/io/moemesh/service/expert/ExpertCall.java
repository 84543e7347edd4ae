package io.moemesh.service.expert;

/**
 * One message to one expert-service instance: the tokens of a layer that visit it, and per token the
 * (expert, weight) pairs it applies there.
 *
 * @param activations [rows, hidden] float32, the post-attention-normed hidden states of those tokens
 * @param counts      [rows]: pairs per token
 * @param experts     [Σ counts] expert ids, token-major
 * @param weights     [Σ counts] router weights (the shared expert's sigmoid gate for Qwen2-MoE)
 */
public record ExpertCall(long epoch, int layer, float[] activations, int rows, int hidden, int[] counts,
                         int[] experts, float[] weights) {
}
