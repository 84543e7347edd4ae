package io.moemesh.model.generate;

/**
 * A finished generation.
 *
 * @param lastLogits         every vocab logit at the last prompt position, before sampling (trace only, else null)
 * @param routerTopk         {@code [layer][prompt position][k]}, experts by descending router logit (trace only)
 * @param routerWeights      the combine weight applied to each of those experts, same layout (trace only)
 * @param cachedPromptTokens leading prompt positions whose KV came from the prefix cache when the request was
 *                           first admitted (full blocks from position 0; 0 without a hit, always 0 when traced)
 */
public record GenerationResult(int[] promptIds, int[] generatedIds, FinishReason finishReason, float[] lastLogits,
                               int[][][] routerTopk, float[][][] routerWeights, int cachedPromptTokens) {

    public GenerationResult(int[] promptIds, int[] generatedIds, FinishReason finishReason, float[] lastLogits,
                            int[][][] routerTopk) {
        this(promptIds, generatedIds, finishReason, lastLogits, routerTopk, null, 0);
    }
}
