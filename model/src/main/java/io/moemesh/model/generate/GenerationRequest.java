package io.moemesh.model.generate;

/**
 * A prompt to continue.
 *
 * @param promptIds token ids, BOS already applied
 * @param trace     also return the last prompt position's logits and the router's top-k per prompt token
 */
public record GenerationRequest(int[] promptIds, SamplingParams params, boolean trace) {

    public GenerationRequest {
        if (promptIds.length == 0) {
            throw new IllegalArgumentException("the prompt has no tokens");
        }
    }
}
