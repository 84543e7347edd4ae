package io.moemesh.model.engine;

/**
 * What a step returns for one sequence.
 *
 * @param logits [rows, vocab] float32: the last position's logits, every position's, or empty
 * @param routes       router top-k per layer per token ({@code [layer][token][k]}, by descending router logit), or
 *                     null when not traced
 * @param routeWeights the combine weight applied to each of those experts, same layout; null when not traced
 */
public record StepOutput(long seqId, float[] logits, int rows, int[][][] routes, float[][][] routeWeights) {

    public StepOutput(long seqId, float[] logits, int rows, int[][][] routes) {
        this(seqId, logits, rows, routes, null);
    }
}
