package io.moemesh.cli.bench.serve;

import io.moemesh.cli.bench.BenchOptions;
import io.moemesh.model.config.ModelConfigReader;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code moemesh bench serve}: vLLM's {@code bench serve} against a running gateway. */
@Command(name = "serve", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Load a running gateway with a trace, ShareGPT prompts or random lengths, streaming every "
                + "request, and print vLLM's serving metrics: TTFT, TPOT, ITL, E2EL (mean, p50, p90, p99), request and "
                + "token throughput, goodput under SLOs.",
            "--compare-engine instead measures N concurrent streams against the reference engine's N-sequence "
                + "decode rate on the same model, in this run."})
public final class ServeCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--endpoint", required = true, paramLabel = "URL|HOST:PORT",
            description = "The gateway: http://HOST:PORT (OpenAI API; /v1 optional) or HOST:PORT of its gRPC API.")
    String endpoint;

    @Option(names = "--backend", defaultValue = "openai", description = "openai (default) or grpc.")
    String backend;

    @Option(names = "--api-key", paramLabel = "KEY", description = "Bearer API key (HTTP header / gRPC metadata).")
    String apiKey;

    @Option(names = "--model", paramLabel = "NAME", description = "Model name (default: the server's first model).")
    String model;

    @ArgGroup(exclusive = true)
    Source source;

    static final class Source {
        @Option(names = "--trace-file", paramLabel = "CSV", description = "Azure LLM inference trace "
                + "(TIMESTAMP,ContextTokens,GeneratedTokens): arrivals and lengths.")
        Path trace;

        @Option(names = "--sharegpt", paramLabel = "JSON",
                description = "ShareGPT conversations: first turns as prompts.")
        Path shareGpt;

        @Option(names = "--random-input", paramLabel = "N", description = "Random prompts of N tokens.")
        Integer randomInput;
    }

    @Option(names = "--random-output", paramLabel = "M", defaultValue = "128",
            description = "Output tokens with --random-input (default ${DEFAULT-VALUE}).")
    int randomOutput;

    @Option(names = "--sharegpt-output-len", paramLabel = "M", defaultValue = "128",
            description = "Output tokens per ShareGPT prompt (default ${DEFAULT-VALUE}).")
    int shareGptOutput;

    @Option(names = "--num-prompts", defaultValue = "100", description = "Requests to send (default ${DEFAULT-VALUE}).")
    int numPrompts;

    @Option(names = "--request-rate", paramLabel = "R", description = "Poisson arrivals at R requests/s (default inf: "
            + "all at once).")
    Double requestRate;

    @Option(names = "--max-concurrency", paramLabel = "C", description = "At most C requests in flight.")
    Integer maxConcurrency;

    @Option(names = "--speedup", paramLabel = "F", defaultValue = "1",
            description = "Replay trace timestamps F times faster (default ${DEFAULT-VALUE}).")
    double speedup;

    @Option(names = "--seed", defaultValue = "0", description = "Seed of prompts, sampling order and arrivals.")
    long seed;

    @Option(names = "--max-context", paramLabel = "N", description = "Context limit (prompt + output) requests are "
            + "clipped to (default: the server's max_position_embeddings).")
    Integer maxContext;

    @Option(names = "--goodput", arity = "1..*", paramLabel = "KEY:MS", description = "SLOs for goodput: ttft:MS "
            + "tpot:MS e2el:MS.")
    List<String> goodput;

    @Option(names = "--json", paramLabel = "FILE", description = "Also write the results as JSON.")
    Path json;

    @Option(names = "--timeout", paramLabel = "SECONDS", defaultValue = "1800",
            description = "Stop the run after this long (default ${DEFAULT-VALUE}); unfinished requests fail.")
    long timeoutSeconds;

    @Option(names = "--temperature", defaultValue = "0", description = "Sampling temperature (default 0, greedy).")
    double temperature;

    @Option(names = "--ignore-eos", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "Generate exactly max_tokens (default true).")
    boolean ignoreEos;

    @Option(names = "--tokenizer", paramLabel = "DIR", description = "Model directory whose tokenizer.json makes "
            + "prompt lengths exact (default --model-dir).")
    Path tokenizerDir;

    @Option(names = "--compare-engine", description = "Measure the reference engine on --model-dir in-process, then "
            + "the same shapes through the gateway, and print the ratio.")
    boolean compareEngine;

    @Option(names = "--model-dir", paramLabel = "DIR",
            description = "The gateway's model directory (--compare-engine).")
    Path modelDir;

    @Option(names = "--compare-streams", defaultValue = "32", description = "Sequences (default ${DEFAULT-VALUE}).")
    int compareStreams;

    @Option(names = "--compare-input-len", defaultValue = "32",
            description = "Prompt tokens (default ${DEFAULT-VALUE}).")
    int compareInput;

    @Option(names = "--compare-output-len", defaultValue = "128",
            description = "Output tokens (default ${DEFAULT-VALUE}).")
    int compareOutput;

    @Option(names = "--compare-rounds", defaultValue = "3", description = "Alternating engine/gateway passes; the "
            + "median ratio is reported (default ${DEFAULT-VALUE}).")
    int compareRounds;

    @Option(names = "--warmup-tokens", defaultValue = "16", description = "--compare-engine: output tokens of an "
            + "unmeasured pass on each side first (default ${DEFAULT-VALUE}).")
    int warmupTokens;

    @Option(names = "--engine-step-tokens", defaultValue = "512",
            description = "Reference engine's step token budget, as the gateway's (default ${DEFAULT-VALUE}).")
    int engineStepTokens;

    @Override
    public Integer call() {
        validate();
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        Slo slo = Slo.parse(goodput);
        Endpoint ep = Endpoint.parse(endpoint);
        try (StreamingBackend server = backend.equals("grpc") ? new GrpcBackend(ep, apiKey)
                : new OpenAiBackend(ep.openAiBase(), apiKey)) {
            ModelDescription info = server.describe(model);
            String name = model != null ? model : info.name();
            int context = context(info);
            PromptMaker maker = PromptMakers.choose(server, info, name, tokenizerDir != null ? tokenizerDir : modelDir,
                    compareEngine, err);
            StreamingBackend.RequestSpec req = new StreamingBackend.RequestSpec(name, temperature, ignoreEos);
            err.printf(Locale.ROOT, "moemesh bench serve: %s backend at %s, model %s, context %d%n", backend,
                    backend.equals("grpc") ? ep.host() + ":" + ep.port() : ep.openAiBase(), name, context);
            Map<String, Object> result = new LinkedHashMap<>();
            result.put("backend", backend);
            result.put("model", name);
            if (compareEngine) {
                EngineComparison.Outcome c = EngineComparison.run(server, req, maker, modelDir, context,
                        new EngineComparison.Shape(compareStreams, compareInput, compareOutput, warmupTokens,
                                engineStepTokens, compareRounds, seed, Duration.ofSeconds(timeoutSeconds)), err);
                EngineComparison.Round median = c.median();
                ServeMetrics gateway = ServeMetrics.compute(median.gatewayOutcomes(), median.gatewayNanos(), 0, slo);
                ServeReport.print(out, "Serving Benchmark Result", gateway, context, slo);
                ServeReport.printComparison(out, c);
                result.put("workload", "compare: " + compareStreams + " streams, " + c.promptTokens() + " input, "
                        + c.outputTokens() + " output tokens");
                result.putAll(ServeReport.json(gateway, slo));
                result.put("comparison", ServeReport.json(c));
            } else {
                Workload w = workload(maker, context);
                result.put("workload", w.description());
                ServeMetrics m = measure(server, req, w, maxConcurrency == null ? 0 : maxConcurrency, slo, err);
                ServeReport.print(out, "Serving Benchmark Result", m, context, slo);
                result.putAll(ServeReport.json(m, slo));
            }
            if (json != null) {
                ServeReport.write(json, result);
            }
        }
        return 0;
    }

    private ServeMetrics measure(StreamingBackend server, StreamingBackend.RequestSpec req, Workload w,
                                 int concurrency, Slo slo, PrintWriter err) {
        err.printf(Locale.ROOT, "workload: %s%ntraffic request rate: %s, maximum request concurrency: %s%n",
                w.description(), requestRate == null ? "inf" : requestRate, concurrency == 0 ? "none" : concurrency);
        warmUp(server, req, w.prompts().getFirst());
        int total = w.prompts().size();
        int step = Math.max(1, total / 10);
        LoadGenerator load = new LoadGenerator(p -> server.send(req, p), concurrency,
                Duration.ofSeconds(timeoutSeconds), done -> {
                    if (done % step == 0 || done == total) {
                        synchronized (err) {
                            err.printf("%d/%d requests done%n", done, total);
                            err.flush();
                        }
                    }
                });
        LoadGenerator.Result r = load.run(w.prompts(), w.arrivalSeconds());
        if (r.timedOut()) {
            err.printf("--timeout %d s reached: unfinished requests are counted as failed%n", timeoutSeconds);
        }
        return ServeMetrics.compute(r.outcomes(), r.durationNanos(), w.clipped(), slo);
    }

    /** vLLM's "initial test run": one short request that must succeed before the benchmark starts. */
    private static void warmUp(StreamingBackend server, StreamingBackend.RequestSpec req, BenchPrompt first) {
        BenchPrompt probe = new BenchPrompt(first.text(), first.ids(), first.promptTokens(),
                Math.min(first.maxTokens(), 16), first.clipped());
        RequestOutcome o;
        try {
            o = server.send(req, probe);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
        if (!o.success()) {
            throw new IllegalArgumentException("the initial test request failed (check --endpoint, --backend, "
                    + "--api-key, --model): " + o.error());
        }
    }

    private Workload workload(PromptMaker maker, int context) {
        Workload.Pacing pacing = new Workload.Pacing(requestRate == null ? Double.POSITIVE_INFINITY : requestRate,
                requestRate != null, maxConcurrency != null, speedup, seed);
        if (source.trace != null) {
            return Workload.azure(source.trace, numPrompts, maker, context, pacing);
        }
        if (source.shareGpt != null) {
            return Workload.shareGpt(source.shareGpt, numPrompts, shareGptOutput, maker, context, pacing);
        }
        return Workload.random(numPrompts, source.randomInput, randomOutput, maker, context, pacing);
    }

    private int context(ModelDescription info) {
        if (maxContext != null) {
            return maxContext;
        }
        if (info.maxContext().isPresent()) {
            return info.maxContext().getAsInt();
        }
        if (modelDir != null) {
            return ModelConfigReader.read(modelDir).maxPositionEmbeddings();
        }
        throw new IllegalArgumentException("the server does not report its context length in GET /v1/models: pass "
                + "--max-context N");
    }

    private void validate() {
        if (!backend.equals("openai") && !backend.equals("grpc")) {
            throw new IllegalArgumentException("--backend " + backend + ": expected openai or grpc");
        }
        if (compareEngine == (source != null)) {
            throw new IllegalArgumentException(compareEngine
                    ? "--compare-engine runs its own workload: drop --trace-file/--sharegpt/--random-input"
                    : "give a workload: --trace-file CSV, --sharegpt JSON or --random-input N");
        }
        if (compareEngine && modelDir == null) {
            throw new IllegalArgumentException("--compare-engine needs --model-dir DIR (the gateway's model)");
        }
        BenchOptions.positive("--num-prompts", numPrompts);
        BenchOptions.positive("--random-output", randomOutput);
        BenchOptions.positive("--sharegpt-output-len", shareGptOutput);
        BenchOptions.positive("--timeout", timeoutSeconds);
        BenchOptions.positive("--compare-streams", compareStreams);
        BenchOptions.positive("--compare-input-len", compareInput);
        BenchOptions.positive("--compare-output-len", compareOutput);
        BenchOptions.positive("--compare-rounds", compareRounds);
        BenchOptions.positive("--engine-step-tokens", engineStepTokens);
        if (source != null && source.randomInput != null) {
            BenchOptions.positive("--random-input", source.randomInput);
        }
        if (maxConcurrency != null) {
            BenchOptions.positive("--max-concurrency", maxConcurrency);
        }
        if (maxContext != null) {
            BenchOptions.positive("--max-context", maxContext);
        }
        if (requestRate != null && !(requestRate > 0)) {
            throw new IllegalArgumentException("--request-rate must be > 0 (default inf), got " + requestRate);
        }
        if (!(speedup > 0) || Double.isInfinite(speedup)) {
            throw new IllegalArgumentException("--speedup must be a finite number > 0, got " + speedup);
        }
        BenchOptions.notNegative("--warmup-tokens", warmupTokens);
    }
}
