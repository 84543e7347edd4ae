package io.moemesh.model.generate;

/**
 * Admission's asynchronous step: before the scheduler admits a sequence (first admission, and resume after a
 * preemption) it asks whether the sequence's KV that another tier holds has been brought in. A loader that must
 * fetch starts the fetch on its own threads and answers false; the scheduler then leaves the sequence waiting
 * (others are admitted meanwhile) and asks again at a later step; once the blocks are in (imported into the
 * {@code PrefixSource}) or the fetch failed or timed out, it answers true and the sequence is admitted, its prefix
 * found by the prefix source as usual. A loader must wake the engine loop when a fetch ends (the loop may be idle).
 * Engine thread only; never blocks. Never asked for traced requests (they compute every position).
 */
public interface PrefixLoader {
    /** Nothing to load: every sequence is admitted at once. */
    PrefixLoader NONE = (seqId, context, tenant, again) -> true;

    /**
     * @param context the context about to be prefilled (as {@code PrefixSource.acquirePrefix} gets it)
     * @param again   false at the first admission, true when the sequence was admitted before (a resume)
     * @return true to admit now, false to wait (ask again at a later step)
     */
    boolean ready(long seqId, int[] context, String tenant, boolean again);

    /**
     * Whether the sequence that {@link #ready} just held back keeps its place in the queue meanwhile: the scheduler
     * then admits nobody after it in that step, as when a first chunk does not fit. For a sequence that waits for
     * the pool to have room for what it brings back (a swapped-out sequence's restore): a sequence admitted past it
     * would take that room, and it would end up recomputing what the other tier holds. A place held stops every
     * later request, so an implementation holds it only while the wait can pay (the other tier has blocks to bring
     * back) and for a bounded time (it has the clock; the scheduler has none). False by default (others are admitted
     * while it loads).
     */
    default boolean holdsPlace(long seqId) {
        return false;
    }

    /** The sequence left the scheduler (finished, failed or cancelled): drop what is kept for it. */
    default void forget(long seqId) {
    }
}
