package io.moemesh.model.engine;

/**
 * Where the engine sends a layer's expert work: computed in-process ({@link LocalExperts}) or dispatched to
 * expert-service instances by the gateway. Correctness never depends on where: every implementation
 * returns {@code Σ w · FFN_e(x)} per token.
 *
 * <p>Two forms of the same call: {@link #run} returns when {@code out} is written; {@link #start} begins the
 * work and returns a {@link Pending} whose {@link Pending#await()} writes {@code out}. The engine uses {@code
 * start} so that one micro-batch's expert hop overlaps another micro-batch's attention and dense work
 * (MegaScale-Infer's ping-pong pipeline, Zhu et al. 2025; docs/engine.md). The default {@code start} computes
 * right there with {@code run} (nothing to overlap in-process); a dispatch that sends work elsewhere sends in
 * {@code start} and waits in {@code await}.
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

    /**
     * Begins what {@link #run} computes and returns without waiting for it (or computes it here: the default).
     * The caller keeps {@code x}, {@code experts} and {@code weights} unchanged and does not read {@code out}
     * until {@link Pending#await()} returned, and calls exactly one of {@link Pending#await()} or {@link
     * Pending#abandon()} on the handle. Several handles (of different steps' rows, e.g. micro-batches of one step)
     * may be in flight at once; all calls come from the engine's thread. An exception here means nothing of the
     * call is in flight.
     */
    default Pending start(StepContext step, int layer, float[] x, int[] experts, float[] weights, int pairsPerToken,
                          float[] out) {
        run(step, layer, x, experts, weights, pairsPerToken, out);
        return Pending.DONE;
    }

    /** A layer's expert work in flight ({@link #start}). */
    interface Pending {
        /** Already computed: {@code await} and {@code abandon} return at once. */
        Pending DONE = new Pending() {
            @Override
            public void await() {
            }

            @Override
            public void abandon() {
            }
        };

        /**
         * Returns once {@code out} holds every row's result (retries included), or throws what {@link #run} would
         * have thrown; either way nothing of the call is in flight afterwards.
         */
        void await();

        /**
         * The result is not wanted (the step failed elsewhere): returns once nothing of the call is in flight,
         * without retrying and without counting the abandonment against the instances. Never throws.
         */
        void abandon();
    }
}
