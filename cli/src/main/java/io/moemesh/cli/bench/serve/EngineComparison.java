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

    static Outcome run(StreamingBackend server, StreamingBackend.RequestSpec req, PromptMaker maker, Path modelDir,
                       int context, Shape shape, PrintWriter err) {
        SplittableRandom random = new SplittableRandom(shape.seed());
        List<BenchPrompt> prompts = new ArrayList<>();
        List<int[]> ids = new ArrayList<>();
        for (int i = 0; i < shape.streams(); i++) {
            BenchPrompt p = maker.synthetic(shape.inputTokens(), shape.outputTokens(), context, random.split());
            prompts.add(p);
            ids.add(p.ids());
        }
        int output = prompts.getFirst().maxTokens();
        double[] atOnce = ArrivalSchedule.immediate(shape.streams());
        LoadGenerator load = new LoadGenerator(p -> server.send(req, p), shape.streams(), shape.timeout(), d -> { });
        List<Round> rounds = new ArrayList<>();
        try (MoeModel m = MoeModel.open(modelDir)) {
            if (shape.warmupTokens() > 0) {
                log(err, "warm-up: reference engine on %s and gateway, %d sequences x %d tokens", modelDir,
                        shape.streams(), shape.warmupTokens());
                EngineBaseline.measure(m, ids, shape.warmupTokens(), 0, shape.engineStepTokens());
                List<BenchPrompt> warm = prompts.stream().map(p -> new BenchPrompt(p.text(), p.ids(), p.promptTokens(),
                        Math.min(p.maxTokens(), shape.warmupTokens()), p.clipped())).toList();
                LoadGenerator.Result w = load.run(warm, atOnce);
                if (w.outcomes().stream().noneMatch(RequestOutcome::success)) {
                    throw new IllegalArgumentException("every warm-up request to the gateway failed: "
                            + w.outcomes().getFirst().error());
                }
            }
            for (int r = 1; r <= shape.rounds(); r++) {
                EngineBaseline.Result engine = EngineBaseline.measure(m, ids, output, 0, shape.engineStepTokens());
                LoadGenerator.Result gw = load.run(prompts, atOnce);
                Comparison c = Comparison.of(engine.outcomes(), engine.durationNanos(), gw.outcomes(),
                        gw.durationNanos());
                log(err, "round %d/%d: engine %.2f, gateway %.2f decode tokens/s, ratio %.3f", r, shape.rounds(),
                        c.engineDecodeTokensPerSecond(), c.gatewayDecodeTokensPerSecond(), c.decodeRatio());
                rounds.add(new Round(c, gw.outcomes(), gw.durationNanos()));
            }
        }
        List<Round> sorted = new ArrayList<>(rounds);
        sorted.sort(Comparator.comparingDouble(r -> r.comparison().decodeRatio()));
        return new Outcome(rounds, sorted.get((sorted.size() - 1) / 2), prompts.getFirst().promptTokens(), output);
    }

    private static void log(PrintWriter err, String format, Object... args) {
        err.printf(Locale.ROOT, format + "%n", args);
        err.flush();
    }
}
