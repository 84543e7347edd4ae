package io.moemesh.model.engine;

/**
 * One sequence's share of a batched step: {@code tokens} at positions [startPos, startPos + tokens.length).
 * A prefill chunk has many tokens, a decode step one. Positions before {@code startPos} must already be in
 * the KV cache.
 *
 * @param logits      which positions' logits to return
 * @param traceRoutes record the router's top-k per layer for these tokens
 */
public record SequenceStep(long seqId, int[] tokens, int startPos, Logits logits, boolean traceRoutes) {

    public enum Logits {
        /** A prefill chunk that is not the prompt's last. */
        NONE,
        /** The last position only: what sampling needs. */
        LAST,
        /** Every position (teacher-forced evaluation). */
        ALL
    }

    public SequenceStep {
        if (tokens.length == 0) {
            throw new IllegalArgumentException("sequence " + seqId + ": a step needs at least one token");
        }
        if (startPos < 0) {
            throw new IllegalArgumentException("sequence " + seqId + ": negative start position " + startPos);
        }
    }

    public static SequenceStep decode(long seqId, int token, int pos) {
        return new SequenceStep(seqId, new int[] {token}, pos, Logits.LAST, false);
    }

    public int endPos() {
        return startPos + tokens.length;
    }
}
