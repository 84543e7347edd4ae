package io.moemesh.cli.bench;

import io.moemesh.cli.bench.jmh.ExpertFfnBenchmark;
import io.moemesh.cli.bench.jmh.MemoryReadBenchmark;
import io.moemesh.model.kernel.Parallel;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.format.OutputFormatFactory;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;
import org.openjdk.jmh.runner.options.VerboseMode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code moemesh bench kernels}: the JMH kernel table. Expert SwiGLU GFLOP/s of our kernels next to plain OpenBLAS
 * sgemm of the same shapes, and the 1-token weight stream next to plain memory-read bandwidth, all in one run
 * (each JMH benchmark in its own forked JVM, with this JVM's flags). JMH's progress goes to stderr.
 */
@Command(name = "kernels", mixinStandardHelpOptions = true,
        description = "JMH: expert SwiGLU GFLOP/s vs OpenBLAS sgemm, 1-token weight bytes/s vs memory bandwidth.")
final class KernelBenchCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--tokens", split = ",", defaultValue = "1,8,32,128", description = "Tokens per expert (default ${DEFAULT-VALUE}).")
    List<String> tokens;

    @Option(names = "--hidden", defaultValue = "1024", description = "Expert input size (default ${DEFAULT-VALUE}: model M).")
    int hidden;

    @Option(names = "--intermediate", defaultValue = "2816", description = "Expert inner size (default ${DEFAULT-VALUE}: model M).")
    int intermediate;

    @Option(names = "--experts", defaultValue = "16", description = "Experts cycled through, ≥ 8 so weights stream from memory (default ${DEFAULT-VALUE}).")
    int experts;

    @Option(names = "--iterations", defaultValue = "5", description = "Measured 1-s iterations per benchmark (default ${DEFAULT-VALUE}).")
    int iterations;

    @Option(names = "--warmup", defaultValue = "3", description = "Warm-up 1-s iterations per benchmark (default ${DEFAULT-VALUE}).")
    int warmup;

    @Option(names = "--quick", description = "1 warm-up and 2 measured iterations: a quick look, not for the docs.")
    boolean quick;

    @Override
    public Integer call() throws Exception {
        validate();
        PrintWriter out = spec.commandLine().getOut();
        List<String> jvm = new ArrayList<>(ManagementFactory.getRuntimeMXBean().getInputArguments());
        jvm.removeIf(a -> a.startsWith("-agentlib") || a.startsWith("-javaagent") || a.startsWith("-XX:StartFlightRecording"));
        ChainedOptionsBuilder opts = new OptionsBuilder()
                .include(ExpertFfnBenchmark.class.getName() + ".*")
                .include(MemoryReadBenchmark.class.getName() + ".*")
                .param("tokens", tokens.toArray(String[]::new))
                .param("hidden", Integer.toString(hidden))
                .param("intermediate", Integer.toString(intermediate))
                .param("experts", Integer.toString(experts))
                .forks(1)
                .warmupIterations(quick ? 1 : warmup)
                .measurementIterations(quick ? 2 : iterations)
                .warmupTime(TimeValue.seconds(1))
                .measurementTime(TimeValue.seconds(1))
                .jvmArgs(jvm.toArray(String[]::new));
        PrintStream progress = System.err;
        Collection<RunResult> results = new Runner(opts.build(),
                OutputFormatFactory.createFormatInstance(progress, VerboseMode.NORMAL)).run();
        print(out, results);
        return 0;
    }

    /** Every option before JMH forks anything (its own errors come late and as stack traces). */
    private void validate() {
        for (String t : tokens) {
            int m;
            try {
                m = Integer.parseInt(t.strip());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--tokens takes whole numbers, got \"" + t + "\"");
            }
            BenchOptions.positive("--tokens", m);
        }
        BenchOptions.positive("--hidden", hidden);
        BenchOptions.positive("--intermediate", intermediate);
        BenchOptions.positive("--iterations", iterations);
        BenchOptions.notNegative("--warmup", warmup);
        if (experts < 8) {
            throw new IllegalArgumentException("--experts must be at least 8 so the weights stream from memory, got "
                    + experts);
        }
    }

    private void print(PrintWriter out, Collection<RunResult> results) {
        Map<String, double[]> ffn = new HashMap<>();
        double bandwidth = Double.NaN;
        double bandwidthErr = Double.NaN;
        for (RunResult r : results) {
            var p = r.getParams();
            double score = r.getPrimaryResult().getScore();
            double err = r.getPrimaryResult().getScoreError();
            if (p.getBenchmark().endsWith("MemoryReadBenchmark.read")) {
                double bytes = Integer.parseInt(p.getParam("megabytes")) * (double) (1 << 20);
                bandwidth = score * bytes / 1e9;
                bandwidthErr = err * bytes / 1e9;
            } else {
                ffn.put(p.getParam("kernel") + "@" + p.getParam("tokens"), new double[] {score, err});
            }
        }
        out.printf(Locale.ROOT, "Expert SwiGLU, hidden %d, intermediate %d, cycling %d experts; %d threads; "
                + "GFLOP/s ± JMH 99.9%% error%n%n", hidden, intermediate, experts, Parallel.threads());
        out.println("| tokens | ours, bf16 weights | ours, f32 weights | OpenBLAS sgemm, f32 | bf16 / sgemm | f32 / sgemm |");
        out.println("|---|---|---|---|---|---|");
        for (String t : tokens) {
            int m = Integer.parseInt(t);
            double flops = ExpertFfnBenchmark.flops(m, hidden, intermediate) / 1e9;
            double[] bf = ffn.get(ExpertFfnBenchmark.OURS_BF16 + "@" + t);
            double[] f32 = ffn.get(ExpertFfnBenchmark.OURS_F32 + "@" + t);
            double[] sg = ffn.get(ExpertFfnBenchmark.SGEMM + "@" + t);
            out.printf(Locale.ROOT, "| %d | %s | %s | %s | %s | %s |%n", m, gflops(bf, flops), gflops(f32, flops),
                    gflops(sg, flops), ratio(bf, sg), ratio(f32, sg));
        }
        double[] one = ffn.get(ExpertFfnBenchmark.OURS_BF16 + "@1");
        if (one != null && !Double.isNaN(bandwidth)) {
            double bytes = 3.0 * hidden * intermediate * 2;
            double stream = one[0] * bytes / 1e9;
            out.printf(Locale.ROOT, "%nWeights streamed at 1 token (bf16): %.1f GB/s; plain memory read, same run: "
                    + "%s GB/s; ratio %.0f%%%n", stream, gflops(new double[] {bandwidth, bandwidthErr}, 1),
                    100 * stream / bandwidth);
        }
        out.flush();
    }

    /** "score ± error" of a JMH result scaled by {@code perOp} (GFLOP or GB per operation). */
    private static String gflops(double[] r, double gflopPerOp) {
        if (r == null) {
            return "–";
        }
        // JMH has no error estimate for too few iterations (--quick): the score alone then.
        return Double.isNaN(r[1]) ? String.format(Locale.ROOT, "%.1f", r[0] * gflopPerOp)
                : String.format(Locale.ROOT, "%.1f ± %.1f", r[0] * gflopPerOp, r[1] * gflopPerOp);
    }

    private static String ratio(double[] a, double[] b) {
        return a == null || b == null ? "–" : String.format(Locale.ROOT, "%.0f%%", 100 * a[0] / b[0]);
    }
}
