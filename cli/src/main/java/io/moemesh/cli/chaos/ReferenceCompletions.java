package io.moemesh.cli.chaos;

import io.moemesh.model.MoeModel;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.Generator;
import io.moemesh.model.generate.SamplingParams;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Greedy completions of the chaos prompts by the reference engine (experts in-process), all in one batch. */
public final class ReferenceCompletions {
    /** Varied lengths and scripts, so prefill chunks and decode steps both run while instances die. */
    public static final List<String> DEFAULT_PROMPTS = List.of(
            "Experts in a mixture",
            "gRPC streams carry one message per layer",
            "The quick brown fox jumps over the lazy dog.",
            "Once upon a time, in a data center far away, a replica went down and",
            "Kubernetes restarts containers that exit; a supervisor does the same for a local mesh of services that",
            "Mixture-of-Experts models route each token to a few experts chosen by a gate.",
            "Würzburg, Zürich, Reykjavík: non-ASCII text must survive every hop.",
            "1, 2, 3, 5, 8, 13, 21,",
            "def fibonacci(n):\n    if n < 2:\n        return n\n",
            "A circuit breaker opens after failures and half-opens to probe again.",
            "Once",
            "The cache holds blocks of sixteen tokens, keyed by a chained hash of the prefix, so that");

    private ReferenceCompletions() {
    }

    public static List<ChaosPrompt> compute(Path modelDir, List<String> prompts, int maxTokens) {
        try (MoeModel m = MoeModel.open(modelDir)) {
            List<GenerationRequest> requests = new ArrayList<>();
            int tokens = 0;
            for (String p : prompts) {
                int[] ids = m.encodePrompt(p);
                tokens += ids.length + maxTokens;
                requests.add(new GenerationRequest(ids, SamplingParams.greedy(maxTokens), false));
            }
            Generator gen = new Generator(m.localEngine(), m.newCache(tokens + 16 * prompts.size()), 512);
            List<GenerationResult> results = gen.generate(requests, (i, t) -> { });
            List<ChaosPrompt> out = new ArrayList<>();
            for (int i = 0; i < prompts.size(); i++) {
                out.add(new ChaosPrompt(prompts.get(i), results.get(i).generatedIds()));
            }
            return out;
        }
    }
}
