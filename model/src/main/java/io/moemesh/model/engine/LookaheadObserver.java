package io.moemesh.model.engine;

/**
 * Sees, at every MoE layer l but the last, a prediction of layer l+1's routed experts for every row of the step:
 * layer l+1's gate applied to the MoE input of layer l (Pre-gated MoE, Hwang et al., ISCA 2024: the next layer's
 * experts are known one layer early, so their weights can be fetched while layer l computes). The engine calls it
 * before it dispatches layer l's experts, which gives a listener the longest lead before layer l+1's true gate.
 * A prediction is advice: it never changes what the step computes. Runs on the engine thread inside the step:
 * keep it cheap, copy what you keep.
 */
public interface LookaheadObserver {
    /** No listener: the engine computes no lookahead at all (no matmul, no buffer). */
    LookaheadObserver NONE = new LookaheadObserver() {
        @Override
        public int guesses() {
            return 0;
        }

        @Override
        public void onLookahead(StepContext step, int nextLayer, int[] experts, float[] scores, int perRow) {
        }
    };

    /**
     * Routed experts to predict per row (k'); 0 = none (the engine skips the lookahead). Read once, when the
     * engine is built; values above {@code num_experts} are capped to it.
     */
    int guesses();

    /**
     * @param nextLayer the layer predicted (1 .. num_layers − 1); the call comes during layer {@code nextLayer − 1}
     * @param experts   for row r, {@code experts[r·K + j]}, j &lt; K = {@code perRow}: routed experts by descending
     *                  probability under layer {@code nextLayer}'s gate. Never the shared expert of Qwen2-MoE: it
     *                  joins every token at every layer, so it is certain rather than predicted
     * @param scores    the softmax probability of each over all routed experts, same layout
     *                  Both arrays are the engine's buffers, valid during the call only, with at least
     *                  {@code step.rows() · K} entries.
     * @param perRow    K, the {@link #guesses()} (capped)
     */
    void onLookahead(StepContext step, int nextLayer, int[] experts, float[] scores, int perRow);
}
