package io.moemesh.cli.bench.serve;

import io.moemesh.model.MoeModel;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * {@code --compare-engine}: the reference engine in this JVM on {@code modelDir} and the same prompts as concurrent
 * streams through the gateway (all sent at once, one slot each). Each side first runs an unmeasured warm-up pass of
 * the same shape with fewer output tokens; then the two alternate for a number of rounds, so load from anything else
 * on the machine hits both sides alike, and the round with the median ratio is reported.
 *
 * <p>The warm-up and every round have prompts of their own (one split of {@code --seed} each), and within a round
 * both sides decode the same prompts. Why: the gateway keeps the full KV blocks of every prompt it served (automatic
 * prefix caching, on by default) and the reference engine keeps nothing between passes; sent the same prompts again,
 * the gateway would skip the prefill of every block but the last one's while the engine prefilled all of it.
 */
final class EngineComparison {

    record Shape(int streams, int inputTokens, int outputTokens, int warmupTokens, int engineStepTokens, int rounds,
                 long seed, Duration timeout) {
    }

    /** One engine pass and one gateway pass on the same prompts. */
    record Round(Comparison comparison, List<RequestOutcome> gatewayOutcomes, long gatewayNanos) {
    }

    record Outcome(List<Round> rounds, Round median, int promptTokens, int outputTokens) {
    }

    private EngineComparison() {
    }

    /** The reference engine's side of a pass: decodes {@code prompts} for {@code outputTokens} tokens each. */
    @FunctionalInterface
    interface Engine {
        EngineBaseline.Result decode(List<int[]> prompts, int outputTokens);
    }

    static Outcome run(StreamingBackend server, StreamingBackend.RequestSpec req, PromptMaker maker, Path modelDir,
                       int context, Shape shape, PrintWriter err) {
        try (MoeModel m = MoeModel.open(modelDir)) {
            log(err, "reference engine: %s in this JVM", modelDir);
            return run(server, req, maker,
                    (ids, output) -> EngineBaseline.measure(m, ids, output, 0, shape.engineStepTokens()), context,
                    shape, err);
        }
    }

    static Outcome run(StreamingBackend server, StreamingBackend.RequestSpec req, PromptMaker maker, Engine engine,
                       int context, Shape shape, PrintWriter err) {
        SplittableRandom seeds = new SplittableRandom(shape.seed());
        // Split in a fixed order (warm-up, then round 1, 2, ...) whether or not the warm-up runs, so a round's
        // prompts depend on the seed and the shape only.
        List<BenchPrompt> warmPrompts = prompts(maker, shape, context, seeds.split());
        double[] atOnce = ArrivalSchedule.immediate(shape.streams());
        LoadGenerator load = new LoadGenerator(p -> server.send(req, p), shape.streams(), shape.timeout(), d -> { });
        if (shape.warmupTokens() > 0) {
            log(err, "warm-up: reference engine and gateway, %d sequences x %d tokens (prompts no round uses)",
                    shape.streams(), shape.warmupTokens());
            engine.decode(ids(warmPrompts), shape.warmupTokens());
            List<BenchPrompt> warm = warmPrompts.stream().map(p -> new BenchPrompt(p.text(), p.ids(),
                    p.promptTokens(), Math.min(p.maxTokens(), shape.warmupTokens()), p.clipped())).toList();
            LoadGenerator.Result w = load.run(warm, atOnce);
            if (w.outcomes().stream().noneMatch(RequestOutcome::success)) {
                throw new IllegalArgumentException("every warm-up request to the gateway failed: "
                        + w.outcomes().getFirst().error());
            }
        }
        List<Round> rounds = new ArrayList<>();
        int promptTokens = 0;
        int output = 0;
        for (int r = 1; r <= shape.rounds(); r++) {
            List<BenchPrompt> prompts = prompts(maker, shape, context, seeds.split());
            promptTokens = prompts.getFirst().promptTokens();
            output = prompts.getFirst().maxTokens();
            EngineBaseline.Result e = engine.decode(ids(prompts), output);
            LoadGenerator.Result gw = load.run(prompts, atOnce);
            Comparison c = Comparison.of(e.outcomes(), e.durationNanos(), gw.outcomes(), gw.durationNanos());
            log(err, "round %d/%d: engine %.2f, gateway %.2f decode tokens/s, ratio %.3f", r, shape.rounds(),
                    c.engineDecodeTokensPerSecond(), c.gatewayDecodeTokensPerSecond(), c.decodeRatio());
            rounds.add(new Round(c, gw.outcomes(), gw.durationNanos()));
        }
        List<Round> sorted = new ArrayList<>(rounds);
        sorted.sort(Comparator.comparingDouble(r -> r.comparison().decodeRatio()));
        return new Outcome(rounds, sorted.get((sorted.size() - 1) / 2), promptTokens, output);
    }

    /** One pass's prompts: {@code streams} of them, each from its own split of {@code random}. */
    private static List<BenchPrompt> prompts(PromptMaker maker, Shape shape, int context, SplittableRandom random) {
        List<BenchPrompt> prompts = new ArrayList<>(shape.streams());
        for (int i = 0; i < shape.streams(); i++) {
            prompts.add(maker.synthetic(shape.inputTokens(), shape.outputTokens(), context, random.split()));
        }
        return prompts;
    }

    private static List<int[]> ids(List<BenchPrompt> prompts) {
        return prompts.stream().map(BenchPrompt::ids).toList();
    }

    private static void log(PrintWriter err, String format, Object... args) {
        err.printf(Locale.ROOT, format + "%n", args);
        err.flush();
    }
}
