package io.moemesh.cli.bench.serve;

import java.util.SplittableRandom;

/**
 * Text prompts without a tokenizer (the OpenAI backend without {@code --tokenizer}): lengths are estimated as one
 * token per whitespace-separated word plus BOS, so input lengths and clipping are approximate. The report's input
 * token counts still come from the server's usage chunk.
 */
public final class WordPromptMaker implements PromptMaker {

    @Override
    public BenchPrompt synthetic(int inputTokens, int outputTokens, int maxContext, SplittableRandom random) {
        ContextClip clip = ContextClip.of(Math.max(2, inputTokens), outputTokens, maxContext);
        StringBuilder text = new StringBuilder();
        for (int i = 1; i < clip.inputTokens(); i++) {
            text.append(i == 1 ? "" : " ").append(FillerWords.next(random));
        }
        return new BenchPrompt(text.toString(), null, clip.inputTokens(), clip.outputTokens(), clip.clipped());
    }

    @Override
    public BenchPrompt text(String text, int outputTokens, int maxContext) {
        String[] words = text.strip().split("\\s+");
        ContextClip clip = ContextClip.of(words.length + 1, outputTokens, maxContext);
        String kept = clip.inputTokens() - 1 < words.length
                ? String.join(" ", java.util.Arrays.copyOf(words, Math.max(1, clip.inputTokens() - 1))) : text;
        return new BenchPrompt(kept, null, clip.inputTokens(), clip.outputTokens(), clip.clipped());
    }

    @Override
    public boolean exact() {
        return false;
    }
}
