package io.moemesh.model.engine;

/**
 * One sequence's share of a batched step: {@code tokens} at positions [startPos, startPos + tokens.length).
 * A prefill chunk has many tokens, a decode step one. Positions before {@code startPos} must already be in
 * the KV cache.
 *
 * @param logits      which positions' logits to return
 * @param traceRoutes record the router's top-k per layer for these tokens in the {@link StepOutput}
 * @param tenant      whose sequence this is (the API key's tenant; "" when nobody asked): KV caches salt their
 *                    prefix hashes with it, so tenants never share blocks
 * @param phase       prefill (prompt or recomputed context) or decode (the last sampled token)
 */
public record SequenceStep(long seqId, int[] tokens, int startPos, Logits logits, boolean traceRoutes, String tenant,
                           Phase phase) {

    public enum Logits {
        /** A prefill chunk that is not the prompt's last. */
        NONE,
        /** The last position only: what sampling needs. */
        LAST,
        /** Every position (teacher-forced evaluation). */
        ALL
    }

    /** What the step's tokens are. */
    public enum Phase {
        /** Prompt tokens, or the context of a preempted sequence being recomputed. */
        PREFILL,
        /** The token sampled last step, one per sequence. */
        DECODE
    }

    public SequenceStep {
        if (tokens.length == 0) {
            throw new IllegalArgumentException("sequence " + seqId + ": a step needs at least one token");
        }
        if (startPos < 0) {
            throw new IllegalArgumentException("sequence " + seqId + ": negative start position " + startPos);
        }
        if (tenant == null || phase == null) {
            throw new IllegalArgumentException("sequence " + seqId + ": tenant and phase must be set");
        }
        if (phase == Phase.DECODE && tokens.length != 1) {
            throw new IllegalArgumentException("sequence " + seqId + ": a decode step has one token, got " + tokens.length);
        }
    }

    /** A prefill chunk of nobody's in particular (tests, the reference CLI). */
    public SequenceStep(long seqId, int[] tokens, int startPos, Logits logits, boolean traceRoutes) {
        this(seqId, tokens, startPos, logits, traceRoutes, "", Phase.PREFILL);
    }

    public static SequenceStep decode(long seqId, int token, int pos) {
        return decode(seqId, token, pos, "");
    }

    public static SequenceStep decode(long seqId, int token, int pos, String tenant) {
        return new SequenceStep(seqId, new int[] {token}, pos, Logits.LAST, false, tenant, Phase.DECODE);
    }

    public int endPos() {
        return startPos + tokens.length;
    }
}
