package io.moemesh.cli.bench.serve;

import java.util.Arrays;
import java.util.OptionalInt;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.function.Function;

/**
 * Prompts as token ids for the gRPC backend when no local tokenizer is given: synthetic prompts are uniformly random
 * ids (vLLM's random dataset does the same) avoiding BOS/EOS and other special ids, so lengths are exact and no two
 * requests share a cached prefix; texts are tokenized by the gateway's own Tokenize RPC (BOS included), then clipped.
 */
public final class RandomIdPromptMaker implements PromptMaker {
    private final int vocabSize;
    private final Set<Integer> excluded;
    private final OptionalInt bos;
    private final Function<String, int[]> serverTokenize;

    public RandomIdPromptMaker(int vocabSize, Set<Integer> excluded, OptionalInt bos,
                               Function<String, int[]> serverTokenize) {
        if (vocabSize <= excluded.size()) {
            throw new IllegalArgumentException("vocabulary of " + vocabSize + " ids has no ordinary token");
        }
        this.vocabSize = vocabSize;
        this.excluded = Set.copyOf(excluded);
        this.bos = bos;
        this.serverTokenize = serverTokenize;
    }

    @Override
    public BenchPrompt synthetic(int inputTokens, int outputTokens, int maxContext, SplittableRandom random) {
        ContextClip clip = ContextClip.of(Math.max(inputTokens, bos.isPresent() ? 2 : 1), outputTokens, maxContext);
        int[] ids = new int[clip.inputTokens()];
        int i = 0;
        if (bos.isPresent()) {
            ids[i++] = bos.getAsInt();
        }
        while (i < ids.length) {
            int id = random.nextInt(vocabSize);
            if (!excluded.contains(id)) {
                ids[i++] = id;
            }
        }
        return new BenchPrompt(null, ids, ids.length, clip.outputTokens(), clip.clipped());
    }

    @Override
    public BenchPrompt text(String text, int outputTokens, int maxContext) {
        int[] ids = serverTokenize.apply(text);
        ContextClip clip = ContextClip.of(ids.length, outputTokens, maxContext);
        int[] kept = clip.inputTokens() < ids.length ? Arrays.copyOf(ids, clip.inputTokens()) : ids;
        return new BenchPrompt(null, kept, kept.length, clip.outputTokens(), clip.clipped());
    }

    @Override
    public boolean exact() {
        return true;
    }
}
