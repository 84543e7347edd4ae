package io.moemesh.model.kv;

import io.moemesh.model.MoeModel;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.Generator;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.TokenListener;
import java.util.List;
import java.util.OptionalLong;
import java.util.SplittableRandom;

/** The requests the KV caches' generation tests send, and the reference they are held to. */
final class GenerationRequests {
    private GenerationRequests() {
    }

    /** BOS, then {@code n - 1} ids drawn from the vocabulary without BOS and EOS. */
    static int[] prompt(MoeModel model, int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] ids = new int[n];
        for (int i = 1; i < n; i++) {
            ids[i] = 2 + r.nextInt(model.config().vocabSize() - 2);
        }
        return ids;
    }

    /** Greedy, {@code tokens} new tokens, EOS ignored, {@code logprobs} top log-probabilities per token. */
    static GenerationRequest greedy(int[] prompt, int tokens, int logprobs) {
        return new GenerationRequest(prompt, new SamplingParams(0, 1, 0, OptionalLong.empty(), tokens, true), false,
                logprobs);
    }

    /** The reference: the request alone, on the engine's plain paged cache. */
    static int[] reference(MoeModel model, GenerationRequest r) {
        return new Generator(model.localEngine(), model.newCache(1024), 512).generate(List.of(r), TokenListener.NONE)
                .getFirst().generatedIds();
    }
}
