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

    /** Tells {@code listener}, on any thread, the id of a sequence whose cap was just lowered. Set once, before serving. */
    void onLowered(LongConsumer listener);
}
