package io.moemesh.model.generate;

/**
 * Preemption: when the KV pool runs short the scheduler preempts the running sequence that arrived last and asks
 * this policy what becomes of its keys and values (vLLM's recompute vs. swap). Either way the sequence's blocks are
 * released and it waits; when it is admitted again, the {@link PrefixSource} says how much of its context is
 * back and the rest is recomputed. Engine thread only.
 */
public interface PreemptionPolicy {

    /** What happens to a preempted sequence's KV. */
    enum Choice {
        /**
         * Nothing is saved: the context is recomputed on resume (with the gateway's prefix cache, its full blocks
         * stay cached until evicted, so a resume soon after finds them).
         */
        RECOMPUTE,
        /**
         * {@link #swapOut} saves it first (to a slower tier); on resume a {@link PrefixLoader} brings it back into the
         * prefix source before the sequence is admitted again.
         */
        SWAP_OUT
    }

    /** Recompute, the policy without another tier. */
    PreemptionPolicy RECOMPUTE = (seqId, tokens, tenant) -> Choice.RECOMPUTE;

    /**
     * @param tokens the context whose KV the sequence holds now (positions [0, tokens.length))
     */
    Choice choose(long seqId, int[] tokens, String tenant);

    /** Called for {@link Choice#SWAP_OUT}, before the sequence's blocks are released. */
    default void swapOut(long seqId, int[] tokens, String tenant) {
        throw new UnsupportedOperationException("this preemption policy does not swap out");
    }
}
