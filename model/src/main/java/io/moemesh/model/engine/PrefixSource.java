package io.moemesh.model.engine;

/**
 * Admission: how many leading positions of a sequence's context already have their keys and values, so the
 * scheduler skips computing them — the gateway's prefix cache today (full blocks keyed by their chained prefix
 * hash, vLLM's automatic prefix caching), the KV-cache service's tiers later. Engine thread only.
 */
public interface PrefixSource {
    /** Nothing is ever cached: every position is computed. */
    PrefixSource NONE = (seqId, tokens, tenant) -> 0;

    /**
     * Makes the longest available prefix of {@code tokens} part of {@code seqId}'s KV (its blocks now belong to
     * the sequence too, so nothing evicts them while it runs) and returns its length: a multiple of the cache's
     * block size, and always less than {@code tokens.length}, because the last token must be computed for its
     * logits. 0 when nothing is available; the sequence's KV must then be empty.
     *
     * @param tokens the context about to be prefilled (the prompt; after a preemption, the prompt and the tokens
     *               generated so far but the last)
     * @param tenant the sequence's tenant: a prefix is found only among that tenant's blocks
     */
    int acquirePrefix(long seqId, int[] tokens, String tenant);
}
