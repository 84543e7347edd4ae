package io.moemesh.gateway.serving;

import java.util.function.LongConsumer;

/**
 * Positions single sequences can reach when that is fewer than the KV cache's bound for all ({@code
 * KvCache.maxSequencePositions}, which the scheduler ends sequences at). With attend offload the cache has no bound,
 * yet a sequence whose offload failed keeps every block locally: it must end where the local pool ends, as a
 * sequence does without offload, or the scheduler would wait forever for blocks it can never get.
 */
public interface SequenceCaps {
    /** No sequence has a cap of its own. */
    SequenceCaps NONE = new SequenceCaps() {
        @Override
        public int positions(long seqId) {
            return Integer.MAX_VALUE;
        }

        @Override
        public void onLowered(LongConsumer listener) {
        }
    };

    /** The most positions (prompt and completion) the sequence can reach now; Integer.MAX_VALUE when uncapped. Any thread. */
    int positions(long seqId);

    /**
     * The most prompt tokens a new request can have now; Integer.MAX_VALUE when uncapped. Less while no block of a
     * prompt could leave the pool (attend offload's service looks down): a longer prompt would only fill the pool and
     * end with 503, so it is refused so at submit. Any thread.
     */
    default int promptPositions() {
        return Integer.MAX_VALUE;
    }

    /**
     * Whether a new request's prompt of {@code promptTokens} is let through: at most {@link #promptPositions}, or, past
     * that, admitted as the one probe of a service that may be back (attend offload: the first such call once the
     * refusal window passed; the next ones are refused until its offload settles). Any thread.
     */
    default boolean admitsPrompt(int promptTokens) {
        return promptTokens <= promptPositions();
    }

    /**
     * Seconds a request refused for a cap (503 kvcache_unavailable) should wait before its retry, at least 1: while
     * long prompts are refused at submit, what remains of that refusal; otherwise 1.
     */
    default int retryAfterSeconds() {
        return 1;
    }

    /** Tells {@code listener}, on any thread, the id of a sequence whose cap was just lowered. Set once, before serving. */
    void onLowered(LongConsumer listener);
}
