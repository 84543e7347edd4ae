package io.moemesh.cli.router;

import io.moemesh.router.trace.RouteTrace;
import io.moemesh.router.trace.TokenRoute;
import io.moemesh.router.trace.TraceFormat;
import io.moemesh.router.trace.TraceReader;
import io.moemesh.router.trace.TraceWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code moemesh router split-trace}: the first N tokens of a trace (in order of first appearance) to one file,
 * the rest to another, same format and header; how the FLAME split of issue 10 is made (tokens 0..1023 train).
 */
@Command(name = "split-trace", mixinStandardHelpOptions = true,
        description = "Write the first --first-tokens tokens of --trace to --out-train and the rest to --out-test, "
                + "in the same format (e.g. FLAME: --first-tokens 1024).")
public final class SplitTraceCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--trace", paramLabel = "FILE", description = "The trace to split (required).")
    Path trace;

    @Option(names = "--first-tokens", paramLabel = "N", description = "Tokens in the training part (required).")
    Integer firstTokens;

    @Option(names = "--out-train", paramLabel = "FILE", description = "Where the first N tokens go (required).")
    Path outTrain;

    @Option(names = "--out-test", paramLabel = "FILE", description = "Where the other tokens go (required).")
    Path outTest;

    @Override
    public Integer call() {
        if (firstTokens == null) {
            throw new IllegalArgumentException("--first-tokens N is required");
        }
        if (firstTokens < 1) {
            throw new IllegalArgumentException("--first-tokens must be at least 1, got " + firstTokens);
        }
        if (outTrain == null || outTest == null) {
            throw new IllegalArgumentException((outTrain == null ? "--out-train" : "--out-test") + " FILE is required");
        }
        RouteTrace whole = new TraceOptions("--trace", trace).read();
        TraceFormat format = TraceReader.detect(trace);
        List<TokenRoute> tokens = whole.tokens();
        if (firstTokens >= tokens.size()) {
            throw new IllegalArgumentException("--first-tokens " + firstTokens + " leaves no test tokens: " + trace
                    + " has " + tokens.size());
        }
        write(whole, tokens.subList(0, firstTokens), format, outTrain, "--out-train");
        write(whole, tokens.subList(firstTokens, tokens.size()), format, outTest, "--out-test");
        spec.commandLine().getOut().printf("%s: %d tokens to %s, %d to %s (%s)%n", trace, firstTokens, outTrain,
                tokens.size() - firstTokens, outTest, format);
        spec.commandLine().getOut().flush();
        return 0;
    }

    private static void write(RouteTrace whole, List<TokenRoute> tokens, TraceFormat format, Path out,
                              String option) {
        RouteTrace part = new RouteTrace(out.toString(), whole.firstLayer(), whole.layers(), whole.experts(),
                whole.topK(), tokens);
        try {
            TraceWriter.write(part, format, out);
        } catch (java.io.UncheckedIOException e) {
            throw new IllegalArgumentException(option + ": " + e.getMessage(), e);
        }
    }
}
