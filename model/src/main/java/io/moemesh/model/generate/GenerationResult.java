package io.moemesh.model.generate;

/**
 * A finished generation.
 *
 * @param lastLogits every vocab logit at the last prompt position, before sampling (trace only, else null)
 * @param routerTopk {@code [layer][prompt position][k]}, experts by descending router logit (trace only)
 */
public record GenerationResult(int[] promptIds, int[] generatedIds, FinishReason finishReason, float[] lastLogits,
                               int[][][] routerTopk) {
}
