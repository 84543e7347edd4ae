package io.moemesh.gateway.serving;

import java.util.Optional;
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
     * Whether a new request's prompt of {@code promptTokens} is let through (empty: refused): at most {@link
     * #promptPositions}, or, past that, admitted as the one probe of a service that may be back (attend offload: the
     * first such call once the refusal window passed; the next ones are refused until its offload settles). The
     * caller tells what it returns the request's sequence and its end ({@link Admitted}). Any thread.
     */
    default Optional<Admitted> admitPrompt(int promptTokens) {
        return promptTokens <= promptPositions() ? Optional.of(Admitted.PLAIN) : Optional.empty();
    }

    /**
     * A new request's prompt let through by {@link #admitPrompt}. When it is the probe, the other long prompts are
     * refused until its offload settles; a probe whose request or sequence ends without an offload outcome (cancelled,
     * finished, failed before its offload was sent, preempted) frees that claim when told so here, and the next long
     * prompt probes, rather than holding the refusals a whole window with nothing probed. Any thread.
     */
    interface Admitted {
        /** A prompt let through that is no probe: nothing to tell. */
        Admitted PLAIN = new Admitted() {
        };

        /** The request is sequence {@code seqId} (the KV cache's release of it, a preemption too, ends a probe). */
        default void submitted(long seqId) {
        }

        /** The request's sequence ended, however, or the request was not submitted after all. Idempotent. */
        default void ended() {
        }
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
