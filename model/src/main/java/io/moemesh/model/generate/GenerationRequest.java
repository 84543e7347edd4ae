package io.moemesh.model.generate;

/**
 * A prompt to continue.
 *
 * @param promptIds token ids, BOS already applied
 * @param trace     also return the last prompt position's logits and the router's top-k per prompt token
 * @param logprobs  -1: none; n ≥ 0: report each sampled token's log-probability and the n most likely alternatives
 */
public record GenerationRequest(int[] promptIds, SamplingParams params, boolean trace, int logprobs) {

    public GenerationRequest {
        if (promptIds.length == 0) {
            throw new IllegalArgumentException("the prompt has no tokens");
        }
        if (logprobs < -1 || logprobs > 20) {
            throw new IllegalArgumentException("logprobs must be in [0, 20], got " + logprobs);
        }
    }

    public GenerationRequest(int[] promptIds, SamplingParams params, boolean trace) {
        this(promptIds, params, trace, -1);
    }
}
