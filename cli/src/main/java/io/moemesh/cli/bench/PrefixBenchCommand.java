package io.moemesh.cli.bench;

import io.moemesh.model.MoeModel;
import io.moemesh.model.kernel.MatMul;
import io.moemesh.model.kernel.Parallel;
import io.moemesh.model.kv.ModelFingerprint;
import io.moemesh.model.kv.PrefixCachingKvCache;
import io.moemesh.model.synth.SynthDtype;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code moemesh bench prefix}: time to first token of a long prompt with a prefix-cache hit next to the same
 * prompt without one, in the same run (issue 9's goal: hit ÷ miss ≤ 0.1 for 2,000 tokens on model M). The engine,
 * the scheduler and the prefix-caching KV cache run in-process exactly as the gateway wires them (same step-token
 * budget default), so the figure is the engine's, without the network.
 */
@Command(name = "prefix", mixinStandardHelpOptions = true,
        description = "Time to first token of a repeated long prompt: prefix-cache hit next to miss, same run.")
final class PrefixBenchCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--model", defaultValue = "M", description = "S or M (default ${DEFAULT-VALUE}).")
    String model;

    @Option(names = "--dtype", defaultValue = "f32", description = "f32 or bf16 weights (default ${DEFAULT-VALUE}).")
    String dtype;

    @Option(names = "--prompt-tokens", defaultValue = "2000", description = "Prompt length (default ${DEFAULT-VALUE}).")
    int promptTokens;

    @Option(names = "--repeats", defaultValue = "5",
            description = "Prompts timed, each as a miss and then as a hit; medians shown (default ${DEFAULT-VALUE}).")
    int repeats;

    @Option(names = "--step-token-budget", defaultValue = "512",
            description = "Tokens per engine step, as moemesh.gateway.step-token-budget (default ${DEFAULT-VALUE}).")
    int stepTokenBudget;

    @Option(names = "--models-dir", paramLabel = "DIR",
            description = "Where the synthetic models are written and reused (default $moemesh.home/target/bench-models).")
    Path modelsDir;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        SynthDtype weights = validate();
        Path dir = BenchModels.ensure(modelsDir != null ? modelsDir : BenchModels.defaultCache(), model, weights, err);
        MatMul.warmUp();
        double[] miss = new double[repeats];
        double[] hit = new double[repeats];
        int cached;
        try (MoeModel m = MoeModel.open(dir)) {
            // Room for two prompts: the one being timed, and the previous one's blocks cached (evicted LRU).
            PrefixCachingKvCache cache = PrefixCachingKvCache.forTokens(m.config().numLayers(), m.config().kvDim(),
                    2 * (promptTokens + 64), ModelFingerprint.of(dir), true);
            PrefixRuns runs = new PrefixRuns(m, cache, stepTokenBudget);
            // Warm-up: C2 compiles the kernels for the chunk shapes and for the short hit step before timing.
            for (int w = 0; w < 2; w++) {
                runs.missThenHit(promptTokens, -1 - w);
            }
            cached = 0;
            for (int r = 0; r < repeats; r++) {
                PrefixRuns.Pair p = runs.missThenHit(promptTokens, r);
                miss[r] = p.miss().ttftMillis();
                hit[r] = p.hit().ttftMillis();
                cached = p.hit().cachedTokens();
                err.printf(Locale.ROOT, "bench: prompt %d: miss %.1f ms, hit %.1f ms (%d cached)%n", r, miss[r], hit[r],
                        cached);
                err.flush();
            }
        }
        Stats missStats = Stats.of(miss);
        Stats hitStats = Stats.of(hit);
        double[] ratios = new double[repeats];
        for (int r = 0; r < repeats; r++) {
            ratios[r] = hit[r] / miss[r];
        }
        out.printf(Locale.ROOT, "Prefix cache, %d threads, %s %s, %d-token prompt, step-token budget %d, median of %d "
                        + "(min–max); each prompt timed first as a miss, then again as a hit%n%n", Parallel.threads(),
                model.toUpperCase(Locale.ROOT), weights.cliName(), promptTokens, stepTokenBudget, repeats);
        out.println("| model | prompt tokens | TTFT miss, ms | TTFT hit, ms | cached tokens | hit ÷ miss |");
        out.println("|---|---|---|---|---|---|");
        out.printf(Locale.ROOT, "| %s %s | %d | %s | %s | %d | %.3f (%.3f–%.3f) |%n", model.toUpperCase(Locale.ROOT),
                weights.cliName(), promptTokens, missStats.cell(), hitStats.cell(), cached, Stats.of(ratios).median(),
                Stats.of(ratios).min(), Stats.of(ratios).max());
        out.flush();
        return 0;
    }

    /** Every option before any work: a typo must not cost a model write and a warm-up first. */
    private SynthDtype validate() {
        SynthDtype weights = SynthDtype.parse(dtype);
        int maxPositions = BenchModels.spec(model, weights).maxPosition();
        BenchOptions.positive("--repeats", repeats);
        BenchOptions.positive("--step-token-budget", stepTokenBudget);
        if (promptTokens < 2 || promptTokens >= maxPositions) {
            throw new IllegalArgumentException("--prompt-tokens must be between 2 and " + (maxPositions - 1)
                    + " (the bench models' positions, one left to generate), got " + promptTokens);
        }
        return weights;
    }
}
