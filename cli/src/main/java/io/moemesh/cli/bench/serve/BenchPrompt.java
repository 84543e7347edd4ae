package io.moemesh.cli.bench.serve;

/**
 * One request of a run, ready to send.
 *
 * @param text         prompt text (the OpenAI backend sends it); null when only ids are known
 * @param ids          prompt token ids with BOS (the gRPC backend sends them as prompt_ids); null when unknown
 * @param promptTokens input length the client expects the server to count (BOS included)
 * @param maxTokens    tokens to generate (sent as max_tokens with ignore_eos, so the output length is fixed)
 * @param clipped      whether the workload's lengths were clipped to the model's context
 */
public record BenchPrompt(String text, int[] ids, int promptTokens, int maxTokens, boolean clipped) {

    public BenchPrompt {
        if (text == null && ids == null) {
            throw new IllegalArgumentException("a prompt needs text or ids");
        }
        if (maxTokens < 1) {
            throw new IllegalArgumentException("max_tokens must be ≥ 1, got " + maxTokens);
        }
    }
}
