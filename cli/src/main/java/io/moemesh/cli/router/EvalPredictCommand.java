package io.moemesh.cli.router;

import io.moemesh.router.prediction.EvalResult;
import io.moemesh.router.prediction.PathPredictors;
import io.moemesh.router.prediction.PredictionEval;
import io.moemesh.router.trace.Relabelling;
import io.moemesh.router.trace.RouteTrace;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code moemesh router eval-predict}: issue 10's online evaluation of a path predictor ({@link PredictionEval}):
 * learn the training file, then predict and learn the test file token by token; print the recall with k and 2k
 * guesses, 1, 2 and 4 layers ahead, per layer (numbered as in the file) and overall, and chance.
 */
@Command(name = "eval-predict", mixinStandardHelpOptions = true,
        description = "Recall of the true experts with k and 2k guesses, 1, 2 and 4 layers ahead, of a predictor "
                + "fitted on --train and scored online on --trace (predict each token from its own earlier layers, "
                + "then learn it). Formats (Mixtral JSONL, FLAME CSV) are detected from the content.")
public final class EvalPredictCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--train", paramLabel = "FILE", description = "The training trace (required).")
    Path train;

    @Option(names = "--trace", paramLabel = "FILE", description = "The test trace, of the same model (required).")
    Path trace;

    @Option(names = "--predictor", paramLabel = "NAME", description = "learned (default), transitions, pooled, "
            + "token or popularity.")
    String predictor = PathPredictors.DEFAULT;

    @Option(names = "--dump", paramLabel = "FILE", description = "Also write one JSON line per scored prediction: "
            + "{\"key\", \"layer\", \"ahead\", \"predicted\": [2k experts, best first]}.")
    Path dump;

    @Option(names = "--relabel-seed", paramLabel = "S", description = "Relabel the experts of both files with one "
            + "random permutation per layer (seeded) first: recall must not change by more than 0.02.")
    Long relabelSeed;

    @Override
    public Integer call() {
        if (!PathPredictors.names().contains(predictor)) {
            throw new IllegalArgumentException("--predictor: unknown predictor '" + predictor + "' (known: "
                    + String.join(", ", PathPredictors.names()) + ")");
        }
        RouteTrace trainTrace = new TraceOptions("--train", train).read();
        RouteTrace testTrace = new TraceOptions("--trace", trace).read();
        try {
            trainTrace.requireSameModel(testTrace);
            trainTrace.requireFullPaths();
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--train/--trace: " + e.getMessage(), e);
        }
        try {
            testTrace.requireFullPaths();
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--trace: " + e.getMessage(), e);
        }
        if (relabelSeed != null) {
            Relabelling relabelling = Relabelling.random(trainTrace.layers(), trainTrace.experts(), relabelSeed);
            trainTrace = relabelling.apply(trainTrace);
            testTrace = relabelling.apply(testTrace);
        }
        EvalResult result;
        if (dump == null) {
            result = PredictionEval.run(trainTrace, testTrace, predictor, null);
        } else {
            try (Writer out = openDump()) {
                result = PredictionEval.run(trainTrace, testTrace, predictor, out);
            } catch (IOException e) {
                throw new UncheckedIOException("--dump: cannot write " + dump + ": " + e.getMessage(), e);
            }
        }
        print(spec.commandLine().getOut(), result, trainTrace, testTrace);
        return 0;
    }

    private Writer openDump() {
        try {
            return new BufferedWriter(Files.newBufferedWriter(dump, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new IllegalArgumentException("--dump: cannot write " + dump + ": " + e.getMessage());
        }
    }

    private void print(PrintWriter out, EvalResult result, RouteTrace trainTrace, RouteTrace testTrace) {
        out.printf(Locale.ROOT, "Predictor %s, fitted on %s (%d tokens), scored online on %s (%d tokens, %d full "
                        + "paths); top-%d of %d experts, k = %d%s%n%n",
                result.predictor(), trainTrace.source(), trainTrace.tokens().size(), testTrace.source(),
                testTrace.tokens().size(), testTrace.fullPaths().size(), result.topK(), result.experts(),
                result.topK(), relabelSeed == null ? "" : ", experts relabelled (seed " + relabelSeed + ")");
        StringBuilder header = new StringBuilder("| layer |");
        StringBuilder rule = new StringBuilder("|---|");
        for (int ahead : result.aheads()) {
            header.append(" A=").append(ahead).append(", k | A=").append(ahead).append(", 2k |");
            rule.append("---|---|");
        }
        out.println(header);
        out.println(rule);
        for (int l = 0; l < testTrace.layers(); l++) {
            StringBuilder row = new StringBuilder("| ").append(testTrace.layerNumber(l)).append(" |");
            for (int ahead : result.aheads()) {
                int layer = l;
                var cell = result.rows().stream().filter(r -> r.ahead() == ahead && r.layer() == layer).findFirst();
                row.append(cell.map(r -> String.format(Locale.ROOT, " %.3f | %.3f |", r.recallK(), r.recall2K()))
                        .orElse(" – | – |"));
            }
            out.println(row);
        }
        StringBuilder overall = new StringBuilder("| **overall** |");
        for (int ahead : result.aheads()) {
            EvalResult.Row r = result.overall(ahead);
            overall.append(String.format(Locale.ROOT, " **%.3f** | **%.3f** |", r.recallK(), r.recall2K()));
        }
        out.println(overall);
        out.printf(Locale.ROOT, "%nChance: %.3f with k = %d guesses, %.3f with 2k = %d.%n", result.chanceK(),
                result.topK(), result.chance2K(), 2 * result.topK());
        out.flush();
    }
}
