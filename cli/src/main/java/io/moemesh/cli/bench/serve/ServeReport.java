package io.moemesh.cli.bench.serve;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import tools.jackson.databind.json.JsonMapper;

/** Prints the results in vLLM's layout ({@code ============ Serving Benchmark Result ============}) and as JSON. */
public final class ServeReport {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final int WIDTH = 50;

    private ServeReport() {
    }

    public static void print(PrintWriter out, String title, ServeMetrics m, int maxContext, Slo slo) {
        out.println(center(" " + title + " ", '='));
        row(out, "Successful requests:", Integer.toString(m.completed()));
        row(out, "Failed requests:", Integer.toString(m.failed()));
        m.errors().forEach((kind, n) -> row(out, "  " + kind + ":", Integer.toString(n)));
        row(out, "Clipped requests (context " + maxContext + "):", Integer.toString(m.clipped()));
        row(out, "Benchmark duration (s):", f(m.durationSeconds()));
        row(out, "Total input tokens:", Long.toString(m.totalInput()));
        row(out, "Total generated tokens:", Long.toString(m.totalOutput()));
        row(out, "Request throughput (req/s):", f(m.requestThroughput()));
        if (m.requestGoodput().isPresent()) {
            row(out, "Request goodput (req/s):", f(m.requestGoodput().getAsDouble()));
            row(out, "  SLOs (ms):", slo.toString());
        }
        row(out, "Input token throughput (tok/s):", f(m.inputThroughput()));
        row(out, "Output token throughput (tok/s):", f(m.outputThroughput()));
        row(out, "Total token throughput (tok/s):", f(m.totalTokenThroughput()));
        latency(out, "Time to First Token", "TTFT", m.ttft());
        latency(out, "Time per Output Token (excl. 1st token)", "TPOT", m.tpot());
        latency(out, "Inter-token Latency", "ITL", m.itl());
        latency(out, "End-to-end Latency", "E2EL", m.e2el());
        out.println("=".repeat(WIDTH));
        out.flush();
    }

    public static void printComparison(PrintWriter out, EngineComparison.Outcome outcome) {
        Comparison c = outcome.median().comparison();
        out.println(center(" Gateway vs reference engine ", '='));
        out.printf(Locale.ROOT, "%d sequences, %d-token prompts, %d output tokens, ignore_eos%n",
                outcome.median().gatewayOutcomes().size(), outcome.promptTokens(), outcome.outputTokens());
        out.printf(Locale.ROOT, "%-34s %12s %12s %8s%n", "(median round)", "engine", "gateway", "ratio");
        compare(out, "Decode tokens/s (sum of 1/TPOT):", c.engineDecodeTokensPerSecond(),
                c.gatewayDecodeTokensPerSecond(), c.decodeRatio());
        compare(out, "Output token throughput (tok/s):", c.engine().outputThroughput(), c.gateway().outputThroughput(),
                c.outputThroughputRatio());
        compare(out, "Mean TTFT (ms):", c.engine().ttft().meanMs(), c.gateway().ttft().meanMs(), Double.NaN);
        compare(out, "Mean TPOT (ms):", c.engine().tpot().meanMs(), c.gateway().tpot().meanMs(), Double.NaN);
        compare(out, "Duration (s):", c.engine().durationSeconds(), c.gateway().durationSeconds(), Double.NaN);
        StringBuilder ratios = new StringBuilder();
        for (EngineComparison.Round r : outcome.rounds()) {
            ratios.append(String.format(Locale.ROOT, " %.3f", r.comparison().decodeRatio()));
        }
        out.println("Decode ratio per round:" + ratios);
        out.printf(Locale.ROOT, "Decode ratio gateway/engine (median): %.3f (goal >= 0.90: %s)%n", c.decodeRatio(),
                c.decodeRatio() >= 0.90 ? "met" : "not met");
        out.println("=".repeat(WIDTH));
        out.flush();
    }

    /** vLLM's result keys ({@code mean_ttft_ms}, {@code p99_itl_ms}, ...) plus failures by kind and clipping. */
    public static Map<String, Object> json(ServeMetrics m, Slo slo) {
        Map<String, Object> j = new LinkedHashMap<>();
        j.put("duration", m.durationSeconds());
        j.put("completed", m.completed());
        j.put("failed", m.failed());
        j.put("errors", m.errors());
        j.put("clipped", m.clipped());
        j.put("total_input_tokens", m.totalInput());
        j.put("total_output_tokens", m.totalOutput());
        j.put("request_throughput", m.requestThroughput());
        j.put("request_goodput", m.requestGoodput().isPresent() ? m.requestGoodput().getAsDouble() : null);
        j.put("goodput_slos_ms", slo.boundsMs());
        j.put("input_throughput", m.inputThroughput());
        j.put("output_throughput", m.outputThroughput());
        j.put("total_token_throughput", m.totalTokenThroughput());
        put(j, "ttft", m.ttft());
        put(j, "tpot", m.tpot());
        put(j, "itl", m.itl());
        put(j, "e2el", m.e2el());
        return j;
    }

    public static Map<String, Object> json(EngineComparison.Outcome outcome) {
        Comparison c = outcome.median().comparison();
        Map<String, Object> j = new LinkedHashMap<>();
        j.put("decode_ratio", c.decodeRatio());
        j.put("engine_decode_tokens_per_s", c.engineDecodeTokensPerSecond());
        j.put("gateway_decode_tokens_per_s", c.gatewayDecodeTokensPerSecond());
        j.put("engine_output_throughput", c.engine().outputThroughput());
        j.put("gateway_output_throughput", c.gateway().outputThroughput());
        j.put("output_throughput_ratio", c.outputThroughputRatio());
        j.put("engine", json(c.engine(), Slo.none()));
        j.put("rounds", outcome.rounds().stream().map(r -> Map.of(
                "decode_ratio", r.comparison().decodeRatio(),
                "engine_decode_tokens_per_s", r.comparison().engineDecodeTokensPerSecond(),
                "gateway_decode_tokens_per_s", r.comparison().gatewayDecodeTokensPerSecond())).toList());
        return j;
    }

    public static void write(Path file, Map<String, Object> json) {
        try {
            Path parent = file.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
            Files.writeString(file, JSON.writerWithDefaultPrettyPrinter().writeValueAsString(json) + "\n");
        } catch (IOException e) {
            throw new UncheckedIOException("--json " + file + ": " + e.getMessage(), e);
        }
    }

    private static void put(Map<String, Object> j, String name, LatencySummary s) {
        j.put("mean_" + name + "_ms", s.meanMs());
        j.put("median_" + name + "_ms", s.p50Ms());
        j.put("p90_" + name + "_ms", s.p90Ms());
        j.put("p99_" + name + "_ms", s.p99Ms());
    }

    private static void latency(PrintWriter out, String header, String name, LatencySummary s) {
        out.println(center(header, '-'));
        row(out, "Mean " + name + " (ms):", f(s.meanMs()));
        row(out, "Median " + name + " (ms):", f(s.p50Ms()));
        row(out, "P90 " + name + " (ms):", f(s.p90Ms()));
        row(out, "P99 " + name + " (ms):", f(s.p99Ms()));
    }

    private static void compare(PrintWriter out, String label, double engine, double gateway, double ratio) {
        out.printf(Locale.ROOT, "%-34s %12.2f %12.2f %8s%n", label, engine, gateway,
                Double.isNaN(ratio) ? "" : String.format(Locale.ROOT, "%.3f", ratio));
    }

    private static void row(PrintWriter out, String label, String value) {
        out.printf(Locale.ROOT, "%-40s %s%n", label, value);
    }

    private static String f(double v) {
        return String.format(Locale.ROOT, "%.2f", v);
    }

    private static String center(String s, char fill) {
        int pad = Math.max(0, WIDTH - s.length());
        return String.valueOf(fill).repeat(pad / 2) + s + String.valueOf(fill).repeat(pad - pad / 2);
    }
}
