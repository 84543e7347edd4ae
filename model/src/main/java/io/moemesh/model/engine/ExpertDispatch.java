package io.moemesh.model.engine;

/**
 * Where the engine sends a layer's expert work: computed in-process ({@link LocalExperts}) or dispatched to
 * expert-service instances by the gateway. Correctness never depends on where: every implementation
 * returns {@code Σ w · FFN_e(x)} per token.
 */
public interface ExpertDispatch {

    /**
     * For each row {@code t < step.rows()}: {@code out[t·H, (t+1)·H) = Σ_j weights[t·P + j] · FFN_{experts[t·P + j]}(x[t·H, ...))}
     * where P = {@code pairsPerToken} and H the hidden size. Expert ids are those of {@link ExpertKey} (the
     * shared expert of Qwen2-MoE is {@code numExperts}). {@code out} is overwritten. {@code step} says which
     * sequence, position, tenant and phase each row is; an implementation that does not need it ignores it.
     *
     * @param x normalised hidden states [rows, hidden] float32
     */
    void run(StepContext step, int layer, float[] x, int[] experts, float[] weights, int pairsPerToken, float[] out);
}
