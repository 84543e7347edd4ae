package io.moemesh.cli.bench.serve;

import java.util.SplittableRandom;

/** Turns workload lengths and texts into prompts the server will count as the wanted number of tokens. */
public interface PromptMaker {

    /** A prompt of {@code inputTokens} tokens (BOS included) for {@code outputTokens}, clipped to the context. */
    BenchPrompt synthetic(int inputTokens, int outputTokens, int maxContext, SplittableRandom random);

    /** {@code text} as the prompt (clipped to the context) asking for {@code outputTokens}. */
    BenchPrompt text(String text, int outputTokens, int maxContext);

    /** Whether prompt lengths are exact (a tokenizer, ids) or estimated (1 word ≈ 1 token). */
    boolean exact();
}
