package io.moemesh.cli.bench.serve;

/**
 * Fits a request's lengths into the model's context (prompt + completion ≤ {@code maxContext} tokens, the
 * gateway's limit). Traces and ShareGPT hold requests longer than a small model's context; vLLM's ShareGPT
 * sampler drops them, here they are clipped and counted so the report says how many were changed.
 *
 * <p>Rule: the prompt keeps at most {@code max(maxContext − output, maxContext / 2)} tokens (so a long completion
 * never squeezes the prompt below half the context), then the completion gets what is left.
 */
public record ContextClip(int inputTokens, int outputTokens, boolean clipped) {

    public static ContextClip of(int inputTokens, int outputTokens, int maxContext) {
        if (maxContext < 2) {
            throw new IllegalArgumentException("--max-context must be ≥ 2, got " + maxContext);
        }
        int in = Math.max(1, inputTokens);
        int out = Math.max(1, outputTokens);
        if ((long) in + out <= maxContext) {
            return new ContextClip(in, out, false);
        }
        int clippedIn = Math.min(in, Math.max(maxContext - out, maxContext / 2));
        int clippedOut = Math.min(out, maxContext - clippedIn);
        return new ContextClip(clippedIn, clippedOut, true);
    }
}
