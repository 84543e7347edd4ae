package io.moemesh.cli.bench;

import io.moemesh.model.MoeModel;
import io.moemesh.model.kernel.MatMul;
import io.moemesh.model.kernel.Parallel;
import io.moemesh.model.synth.SynthDtype;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code moemesh bench engine}: prefill and batched-decode throughput of the reference engine on the synthetic S and
 * M models, median of N runs with their spread, as a markdown table (the step 3; docs/performance.md).
 */
@Command(name = "engine", mixinStandardHelpOptions = true,
        description = "Prefill and decode tokens/s of the single-process engine on synthetic models S and M.")
final class EngineBenchCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--models", split = ",", defaultValue = "S,M", description = "S, M (default ${DEFAULT-VALUE}).")
    List<String> models;

    @Option(names = "--dtypes", split = ",", defaultValue = "f32,bf16", description = "f32, bf16 (default ${DEFAULT-VALUE}).")
    List<String> dtypes;

    @Option(names = "--repeats", defaultValue = "3", description = "Timed runs per cell; the median is shown (default ${DEFAULT-VALUE}).")
    int repeats;

    @Option(names = "--prompt-tokens", defaultValue = "512", description = "Prefill prompt length (default ${DEFAULT-VALUE}).")
    int promptTokens;

    @Option(names = "--concurrency", split = ",", defaultValue = "1,8,32",
            description = "Concurrent sequences of the decode runs (default ${DEFAULT-VALUE}).")
    List<Integer> concurrency;

    @Option(names = "--decode-prompt", defaultValue = "32", description = "Prompt tokens before decoding (default ${DEFAULT-VALUE}).")
    int decodePrompt;

    @Option(names = "--decode-tokens", defaultValue = "128", description = "Tokens decoded per sequence (default ${DEFAULT-VALUE}).")
    int decodeTokens;

    @Option(names = "--models-dir", paramLabel = "DIR",
            description = "Where the synthetic models are written and reused (default $moemesh.home/target/bench-models).")
    Path modelsDir;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        validate();
        Path cache = modelsDir != null ? modelsDir : BenchModels.defaultCache();
        List<String> rows = new ArrayList<>();
        MatMul.warmUp();
        for (String name : models) {
            for (String d : dtypes) {
                SynthDtype dtype = SynthDtype.parse(d);
                Path dir = BenchModels.ensure(cache, name, dtype, err);
                try (MoeModel model = MoeModel.open(dir)) {
                    rows.add(row(name, dtype, new EngineRuns(model), err));
                }
            }
        }
        out.printf(Locale.ROOT, "Engine, %d threads, median of %d (min–max), tokens/s; prefill %d tokens in one step; "
                + "decode %d tokens per sequence after a %d-token prompt%n%n", Parallel.threads(), repeats, promptTokens,
                decodeTokens, decodePrompt);
        StringBuilder header = new StringBuilder("| model | weights | prefill " + promptTokens + " |");
        StringBuilder rule = new StringBuilder("|---|---|---|");
        for (int n : concurrency) {
            header.append(" decode ").append(n).append(n == 1 ? " seq |" : " seqs |");
            rule.append("---|");
        }
        out.println(header);
        out.println(rule);
        rows.forEach(out::println);
        out.flush();
        return 0;
    }

    /** Every option before any work: a typo must not cost a model write and a warm-up first. */
    private void validate() {
        for (String name : models) {
            BenchModels.spec(name, SynthDtype.F32);
        }
        for (String d : dtypes) {
            SynthDtype.parse(d);
        }
        BenchOptions.positive("--repeats", repeats);
        BenchOptions.positive("--prompt-tokens", promptTokens);
        BenchOptions.positive("--decode-prompt", decodePrompt);
        BenchOptions.positive("--decode-tokens", decodeTokens);
        for (int n : concurrency) {
            BenchOptions.positive("--concurrency", n);
        }
        // Both models share max_position_embeddings; a prompt past it would fail in the middle of the run.
        int maxPositions = BenchModels.spec("S", SynthDtype.F32).maxPosition();
        if (promptTokens > maxPositions || decodePrompt + decodeTokens > maxPositions) {
            throw new IllegalArgumentException("--prompt-tokens " + promptTokens + " / --decode-prompt + --decode-tokens "
                    + (decodePrompt + decodeTokens) + " must fit the bench models' " + maxPositions + " positions");
        }
    }

    private String row(String name, SynthDtype dtype, EngineRuns runs, PrintWriter err) {
        String label = name.toUpperCase(Locale.ROOT) + " " + dtype.cliName();
        // Warm-up: C2 compiles the kernels for every batch shape before anything is timed. One pass was not
        // enough (the first timed runs came out 2x slower): the big tile methods compile late.
        for (int w = 0; w < 2; w++) {
            runs.prefill(promptTokens, 99);
            for (int n : concurrency) {
                runs.decode(n, decodePrompt, Math.min(decodeTokens, 32), 99);
            }
        }
        StringBuilder row = new StringBuilder("| " + name.toUpperCase(Locale.ROOT) + " | " + dtype.cliName() + " | ");
        double[] v = new double[repeats];
        for (int r = 0; r < repeats; r++) {
            v[r] = runs.prefill(promptTokens, r);
        }
        row.append(report(err, label + " prefill", v)).append(" |");
        for (int n : concurrency) {
            for (int r = 0; r < repeats; r++) {
                v[r] = runs.decode(n, decodePrompt, decodeTokens, 1000L * r);
            }
            row.append(' ').append(report(err, label + " decode " + n, v)).append(" |");
        }
        return row.toString();
    }

    private static String report(PrintWriter err, String what, double[] v) {
        String cell = Stats.of(v).cell();
        err.printf("bench: %s: %s tok/s%n", what, cell);
        err.flush();
        return cell;
    }
}
