package io.moemesh.gateway.routing;

/**
 * One sampled token's route through every layer of one step, as the real gates chose it.
 *
 * @param sequence the engine's sequence id of the token's request
 * @param position the token's position in its sequence (0-based)
 * @param tokenId  the token id at that position
 * @param prefill  a prompt (or recomputed) token, not a generated one
 * @param experts  routed experts, {@code experts[layer · topK + j]} by descending router logit (Qwen2-MoE's shared
 *                 expert is not a routed expert and is not here)
 * @param weights  their combine weights, same layout
 */
public record SampledRoute(long sequence, int position, int tokenId, boolean prefill, int[] experts, float[] weights) {
}
