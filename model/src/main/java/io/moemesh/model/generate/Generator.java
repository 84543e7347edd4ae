package io.moemesh.model.generate;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.engine.Engine;
import io.moemesh.model.engine.KvCache;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepOutput;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Runs a fixed set of requests to completion through the engine's batched step API: every running sequence
 * decodes in each step, and prompts are prefilled in chunks within the step's token budget (chunked prefill,
 * as in Sarathi-Serve, arXiv:2403.02310). The CLI and benchmarks use it; the gateway's scheduler admits
 * requests continuously on the same step API.
 */
public final class Generator {
    private final Engine engine;
    private final KvCache cache;
    private final int stepTokenBudget;

    public Generator(Engine engine, KvCache cache, int stepTokenBudget) {
        if (stepTokenBudget < 1) {
            throw new IllegalArgumentException("step token budget must be ≥ 1");
        }
        this.engine = engine;
        this.cache = cache;
        this.stepTokenBudget = stepTokenBudget;
    }

    private static final class Seq {
        final int index;
        final GenerationRequest request;
        final Sampler sampler;
        int prefilled;
        int[] generated = new int[16];
        int count;
        FinishReason finish;
        float[] lastLogits;
        int[][][] routes;

        Seq(int index, GenerationRequest request) {
            this.index = index;
            this.request = request;
            this.sampler = new Sampler(request.params());
        }

        int length() {
            return prefilled + count;
        }

        void add(int token) {
            if (count == generated.length) {
                generated = Arrays.copyOf(generated, count * 2);
            }
            generated[count++] = token;
        }
    }

    public List<GenerationResult> generate(List<GenerationRequest> requests, TokenListener listener) {
        ModelConfig c = engine.config();
        List<Seq> seqs = new ArrayList<>();
        for (int i = 0; i < requests.size(); i++) {
            GenerationRequest r = requests.get(i);
            if (r.promptIds().length >= c.maxPositionEmbeddings()) {
                throw new IllegalArgumentException("prompt of " + r.promptIds().length
                        + " tokens leaves no room to generate within max_position_embeddings "
                        + c.maxPositionEmbeddings());
            }
            seqs.add(new Seq(i, r));
        }
        long base = System.nanoTime() << 20;
        try {
            while (seqs.stream().anyMatch(s -> s.finish == null)) {
                List<SequenceStep> batch = new ArrayList<>();
                List<Seq> members = new ArrayList<>();
                int budget = stepTokenBudget;
                for (Seq s : seqs) {
                    if (s.finish == null && s.prefilled == s.request.promptIds().length) {
                        batch.add(SequenceStep.decode(base + s.index, s.generated[s.count - 1], s.length() - 1));
                        members.add(s);
                        budget--;
                    }
                }
                for (Seq s : seqs) {
                    int[] prompt = s.request.promptIds();
                    if (s.finish != null || s.prefilled == prompt.length || budget <= 0) {
                        continue;
                    }
                    int n = Math.min(budget, prompt.length - s.prefilled);
                    boolean last = s.prefilled + n == prompt.length;
                    batch.add(new SequenceStep(base + s.index, Arrays.copyOfRange(prompt, s.prefilled, s.prefilled + n),
                            s.prefilled, last ? SequenceStep.Logits.LAST : SequenceStep.Logits.NONE,
                            s.request.trace()));
                    members.add(s);
                    budget -= n;
                }
                List<StepOutput> outs = engine.step(batch, cache);
                for (int i = 0; i < batch.size(); i++) {
                    advance(members.get(i), batch.get(i), outs.get(i), c, listener);
                }
            }
        } finally {
            for (Seq s : seqs) {
                cache.release(base + s.index);
            }
        }
        return seqs.stream().map(s -> new GenerationResult(s.request.promptIds(), Arrays.copyOf(s.generated, s.count),
                s.finish, s.lastLogits, s.routes)).toList();
    }

    private static void advance(Seq s, SequenceStep step, StepOutput out, ModelConfig c, TokenListener listener) {
        boolean prefill = s.prefilled < s.request.promptIds().length;
        if (prefill) {
            if (out.routes() != null) {
                s.routes = appendRoutes(s.routes, out.routes());
            }
            s.prefilled += step.tokens().length;
            if (s.prefilled < s.request.promptIds().length) {
                return;
            }
            if (s.request.trace()) {
                s.lastLogits = out.logits().clone();
            }
        }
        int token = s.sampler.sample(out.logits(), 0, c.vocabSize());
        s.add(token);
        listener.onToken(s.index, token);
        SamplingParams p = s.request.params();
        if (!p.ignoreEos() && c.eosTokenIds().contains(token)) {
            s.finish = FinishReason.STOP;
        } else if (s.count >= p.maxTokens() || s.length() >= c.maxPositionEmbeddings()) {
            s.finish = FinishReason.LENGTH;
        }
    }

    /** Concatenates per-chunk routes along the position axis: [layer][position][k]. */
    private static int[][][] appendRoutes(int[][][] have, int[][][] chunk) {
        if (have == null) {
            return chunk;
        }
        int[][][] out = new int[have.length][][];
        for (int l = 0; l < have.length; l++) {
            out[l] = new int[have[l].length + chunk[l].length][];
            System.arraycopy(have[l], 0, out[l], 0, have[l].length);
            System.arraycopy(chunk[l], 0, out[l], have[l].length, chunk[l].length);
        }
        return out;
    }
}
