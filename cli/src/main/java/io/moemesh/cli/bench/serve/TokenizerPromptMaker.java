package io.moemesh.cli.bench.serve;

import io.moemesh.model.tokenizer.Tokenizer;
import java.util.Arrays;
import java.util.OptionalInt;
import java.util.SplittableRandom;

/**
 * Exact prompt lengths with the model's own tokenizer (vLLM also needs the tokenizer to synthesise prompts and
 * count their tokens). Synthetic prompts are random filler words, trimmed and re-checked until the text encodes
 * to the wanted number of tokens; BOS counts as one token when the model has one (the server prepends it).
 */
public final class TokenizerPromptMaker implements PromptMaker {
    private static final int MAX_FIXUPS = 16;
    private final Tokenizer tokenizer;
    private final OptionalInt bos;
    private final boolean sendIds;

    /** @param sendIds whether prompts carry ids (the gRPC backend sends prompt_ids) besides the text */
    public TokenizerPromptMaker(Tokenizer tokenizer, OptionalInt bos, boolean sendIds) {
        this.tokenizer = tokenizer;
        this.bos = bos;
        this.sendIds = sendIds;
    }

    @Override
    public BenchPrompt synthetic(int inputTokens, int outputTokens, int maxContext, SplittableRandom random) {
        ContextClip clip = ContextClip.of(inputTokens, outputTokens, maxContext);
        int target = Math.max(1, clip.inputTokens() - bosCount());
        StringBuilder text = new StringBuilder();
        int[] ids = new int[0];
        for (int round = 0; round < MAX_FIXUPS && ids.length != target; round++) {
            while (ids.length < target) {
                // Grow by about the missing number of tokens, then re-encode (words are ≥ 1 token each).
                int missing = target - ids.length;
                for (int w = 0; w < missing; w++) {
                    text.append(text.isEmpty() ? "" : " ").append(FillerWords.next(random));
                }
                ids = tokenizer.encode(text.toString());
            }
            if (ids.length > target) {
                // Trim at a token boundary; decoding then re-encoding can merge differently, so check again.
                text.setLength(0);
                text.append(tokenizer.decode(Arrays.copyOf(ids, target), true));
                ids = tokenizer.encode(text.toString());
            }
        }
        return prompt(text.toString(), ids, clip.outputTokens(), clip.clipped());
    }

    @Override
    public BenchPrompt text(String text, int outputTokens, int maxContext) {
        int[] ids = tokenizer.encode(text);
        ContextClip clip = ContextClip.of(ids.length + bosCount(), outputTokens, maxContext);
        int keep = clip.inputTokens() - bosCount();
        if (keep >= ids.length) {
            return prompt(text, ids, clip.outputTokens(), clip.clipped());
        }
        int[] kept = Arrays.copyOf(ids, Math.max(1, keep));
        String clippedText = tokenizer.decode(kept, true);
        return prompt(clippedText, sendIds ? kept : tokenizer.encode(clippedText), clip.outputTokens(), true);
    }

    @Override
    public boolean exact() {
        return true;
    }

    private BenchPrompt prompt(String text, int[] textIds, int outputTokens, boolean clipped) {
        int[] withBos = textIds;
        if (bos.isPresent() && (textIds.length == 0 || textIds[0] != bos.getAsInt())) {
            withBos = new int[textIds.length + 1];
            withBos[0] = bos.getAsInt();
            System.arraycopy(textIds, 0, withBos, 1, textIds.length);
        }
        return new BenchPrompt(text, sendIds ? withBos : null, withBos.length, outputTokens, clipped);
    }

    private int bosCount() {
        return bos.isPresent() ? 1 : 0;
    }
}
