package io.moemesh.cli.bench.serve;

import io.moemesh.model.MoeModel;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.Generator;
import io.moemesh.model.generate.SamplingParams;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalLong;

/**
 * The single-process reference engine on the same prompts, in this JVM: all requests submitted at once to a
 * {@link Generator} (the same continuous-batching scheduler the gateway drives, same step token budget), greedy,
 * ignore_eos. Each sequence is timed from the start of the batch like a stream (first token = TTFT, gaps = ITL,
 * last token = E2EL), so the serving metrics and the decode rate are computed the same way for both sides.
 */
public final class EngineBaseline {

    /** Outcomes of the measured pass (one per prompt) and its wall time. */
    public record Result(List<RequestOutcome> outcomes, long durationNanos) {
    }

    private EngineBaseline() {
    }

    /**
     * @param warmupTokens output tokens of an unmeasured first pass over the same prompts (JIT, Vector API), 0 = none
     */
    public static Result measure(MoeModel model, List<int[]> prompts, int outputTokens, int warmupTokens,
                                 int stepTokenBudget) {
        if (warmupTokens > 0) {
            run(model, prompts, warmupTokens, stepTokenBudget);
        }
        return run(model, prompts, outputTokens, stepTokenBudget);
    }

    private static Result run(MoeModel model, List<int[]> prompts, int outputTokens, int stepTokenBudget) {
        int n = prompts.size();
        int cacheTokens = 0;
        List<GenerationRequest> requests = new ArrayList<>(n);
        for (int[] ids : prompts) {
            // Whole 16-token blocks per sequence, as the paged cache allocates them.
            cacheTokens += ((ids.length + outputTokens + 15) / 16 + 1) * 16;
            SamplingParams greedyFixedLength = new SamplingParams(0, 1, 0, OptionalLong.empty(), outputTokens, true);
            requests.add(new GenerationRequest(ids, greedyFixedLength, false));
        }
        long[] first = new long[n];
        long[] last = new long[n];
        long[][] gaps = new long[n][outputTokens];
        int[] count = new int[n];
        Arrays.fill(first, -1);
        Generator generator = new Generator(model.localEngine(), model.newCache(cacheTokens), stepTokenBudget);
        long start = System.nanoTime();
        generator.generate(requests, (i, token) -> {
            long now = System.nanoTime();
            if (first[i] < 0) {
                first[i] = now;
            } else if (count[i] - 1 < gaps[i].length) {
                gaps[i][count[i] - 1] = now - last[i];
            }
            last[i] = now;
            count[i]++;
        });
        long end = System.nanoTime();
        List<RequestOutcome> outcomes = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            outcomes.add(count[i] == 0 ? RequestOutcome.failed("no token generated", prompts.get(i).length)
                    : new RequestOutcome(true, "", first[i] - start, last[i] - start,
                            Arrays.copyOf(gaps[i], Math.max(0, count[i] - 1)), prompts.get(i).length, count[i]));
        }
        return new Result(outcomes, end - start);
    }
}
