package io.moemesh.cli.bench;

import io.moemesh.model.MoeModel;
import io.moemesh.model.engine.Engine;
import io.moemesh.model.engine.PagedKvCache;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepOutput;
import io.moemesh.model.generate.Sampler;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The engine scenarios, timed through the batched step API exactly as a server drives it: a prefill is one step of
 * the whole prompt; a decode run prefills {@code n} prompts in one step (untimed), then times {@code tokens} steps
 * in which every sequence decodes one token, greedily, so routing follows the model.
 */
final class EngineRuns {
    private final MoeModel model;
    private final Engine engine;
    private long nextSeq = 1;

    EngineRuns(MoeModel model) {
        this.model = model;
        this.engine = model.localEngine();
    }

    /** Prefill tokens/s of one {@code promptTokens}-token prompt. */
    double prefill(int promptTokens, long seed) {
        PagedKvCache cache = model.newCache(promptTokens + 16);
        long id = nextSeq++;
        int[] prompt = prompt(promptTokens, seed);
        long t0 = System.nanoTime();
        engine.step(List.of(new SequenceStep(id, prompt, 0, SequenceStep.Logits.LAST, false)), cache);
        double seconds = (System.nanoTime() - t0) / 1e9;
        cache.release(id);
        return promptTokens / seconds;
    }

    /** Decode tokens/s summed over {@code sequences} concurrent sequences. */
    double decode(int sequences, int promptTokens, int tokens, long seed) {
        int vocab = model.config().vocabSize();
        PagedKvCache cache = model.newCache(sequences * (promptTokens + tokens + 16));
        long[] ids = new long[sequences];
        List<SequenceStep> batch = new ArrayList<>(sequences);
        for (int s = 0; s < sequences; s++) {
            ids[s] = nextSeq++;
            batch.add(new SequenceStep(ids[s], prompt(promptTokens, seed + s), 0, SequenceStep.Logits.LAST, false));
        }
        List<StepOutput> outs = engine.step(batch, cache);
        int[] next = new int[sequences];
        for (int s = 0; s < sequences; s++) {
            next[s] = Sampler.argmax(outs.get(s).logits(), 0, vocab);
        }
        long t0 = System.nanoTime();
        for (int i = 0; i < tokens; i++) {
            batch.clear();
            for (int s = 0; s < sequences; s++) {
                batch.add(SequenceStep.decode(ids[s], next[s], promptTokens + i));
            }
            outs = engine.step(batch, cache);
            for (int s = 0; s < sequences; s++) {
                next[s] = Sampler.argmax(outs.get(s).logits(), 0, vocab);
            }
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        for (long id : ids) {
            cache.release(id);
        }
        return (double) sequences * tokens / seconds;
    }

    private int[] prompt(int n, long seed) {
        return randomPrompt(model, n, seed);
    }

    /** {@code n} token ids drawn uniformly from the model's vocabulary, the same for the same seed. */
    static int[] randomPrompt(MoeModel model, int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = r.nextInt(model.config().vocabSize());
        }
        return ids;
    }
}
