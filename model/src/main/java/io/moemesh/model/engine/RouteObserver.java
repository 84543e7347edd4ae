package io.moemesh.model.engine;

/**
 * Sees the real gate's choice for every row of every step, at every MoE layer, whether or not anyone asked for a
 * trace: what a pre-gating router learns from (sampled route reports) and what route statistics count. Runs on
 * the engine thread inside the step: keep it cheap, copy what you keep.
 */
@FunctionalInterface
public interface RouteObserver {
    RouteObserver NONE = (step, layer, experts, weights, pairsPerToken) -> { };

    /**
     * @param experts for row r, {@code experts[r·P + j]}, j &lt; P = {@code pairsPerToken}: the routed experts by
     *                descending router logit, then (Qwen2-MoE) the shared expert as {@code num_experts}
     * @param weights the combine weight applied to each, same layout (the shared expert's sigmoid gate)
     *                Both arrays are the engine's buffers, valid during the call only, with at least
     *                {@code step.rows() · P} entries.
     */
    void onRoutes(StepContext step, int layer, int[] experts, float[] weights, int pairsPerToken);
}
