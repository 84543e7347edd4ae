package io.moemesh.cli.bench.mesh;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.cli.mesh.MeshHome;
import io.moemesh.cli.mesh.MeshLauncher;
import io.moemesh.cli.mesh.MeshSpec;
import io.moemesh.cli.mesh.MeshTransport;
import io.moemesh.cli.mesh.RunningMesh;
import io.moemesh.model.MoeModel;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.Generator;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.TokenListener;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.PromptIds;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.OptionalLong;
import java.util.SplittableRandom;
import java.util.TreeMap;
import io.moemesh.cli.bench.AlternatingRounds;
import io.moemesh.cli.bench.LoadAverage;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Decode tokens/s of the same requests through a mesh of 2 expert-service instances and through the reference
 * engine in this process, measured side by side in the same run: 1 and 32 concurrent sequences, 128 tokens each
 * after a 32-token prompt (ignore EOS). Goal (issue 13): mesh ÷ monolithic ≥ 0.95 at 32 and ≥ 0.6 at 1. Each side
 * is warmed up until its JIT settled ({@link JitSettledWarmUp}), then measured in {@code rounds} rounds of
 * alternating order ({@link AlternatingRounds}; both sides decode the same prompts in a round, each round its own),
 * and each side's median counts: on this shared host one run's rate moves by ±12% from one minute to the next. Next
 * to tok/s, the CPU seconds each side spent per decoded token ({@link ThreadCpu}: this JVM for the monolithic engine,
 * the gateway and both expert-services for the mesh), which a shared machine's load hardly moves, and the mesh's
 * split by service and thread kind with its wake-ups per token.
 */
final class DecodeComparison {
    private static final int PROMPT = 32;
    private static final int OUTPUT = 128;
    private static final int[] CONCURRENCY = {1, 32};

    private final Path home;
    private final Path model;
    private final Path work;
    private final PrintWriter err;
    private final List<String> meshJvmOptions;
    private final int rounds;

    DecodeComparison(Path home, Path model, Path work, PrintWriter err, List<String> meshJvmOptions, int rounds) {
        if (rounds < 1) {
            throw new IllegalArgumentException("--decode-rounds must be at least 1, got " + rounds);
        }
        this.home = home;
        this.model = model.toAbsolutePath();
        this.work = work;
        this.err = err;
        this.meshJvmOptions = List.copyOf(meshJvmOptions);
        this.rounds = rounds;
    }

    /**
     * {@code n} prompts of their own: every warm-up run and every measured round of each sequence count, and the two
     * counts, use different seeds (warm-up seeds are positive, measured ones negative), so no measured prompt was
     * seen before and a prefix cache (the gateway's, or a kvcache tier) cannot favour either side.
     */
    static int[][] prompts(int n, int vocab, Phase phase, int round) {
        SplittableRandom r = new SplittableRandom(phase == Phase.WARM_UP ? 1_000_003L * n + 7_919L * round
                : -(42L * n + 7) - 104_729L * round);
        int[][] out = new int[n][PROMPT];
        for (int[] p : out) {
            p[0] = 0;
            for (int i = 1; i < PROMPT; i++) {
                p[i] = 2 + r.nextInt(Math.min(vocab, 512) - 2);
            }
        }
        return out;
    }

    /** Which run of a sequence count the prompts are for. */
    enum Phase { WARM_UP, MEASURED }

    /** One measured run of one side: its decode rate, CPU seconds per decoded token, and where that CPU went. */
    record Sample(double tokensPerSecond, double cpuPerToken, List<ThreadCpu.Use> uses) {
    }

    /** One sequence count's outcome: each side's warm-up and measured rounds (in round order). */
    private record Row(int sequences, JitSettledWarmUp.Outcome monoWarm, JitSettledWarmUp.Outcome meshWarm,
                       List<Sample> mono, List<Sample> mesh) {
        double monoRate() {
            return AlternatingRounds.median(mono, Sample::tokensPerSecond).tokensPerSecond();
        }

        double meshRate() {
            return AlternatingRounds.median(mesh, Sample::tokensPerSecond).tokensPerSecond();
        }

        /** Where the mesh's CPU went over all measured rounds, by service and thread kind. */
        List<ThreadCpu.Use> meshUse() {
            return ThreadCpu.sum(mesh.stream().map(Sample::uses).toList());
        }

        static double cpu(List<Sample> samples) {
            return AlternatingRounds.median(samples, Sample::cpuPerToken).cpuPerToken();
        }
    }

    /** A side's run on given prompts, returning tokens/s. */
    @FunctionalInterface
    private interface Side {
        double decode(int[][] prompts) throws Exception;
    }

    void run(PrintWriter out) throws Exception {
        String loadBefore = LoadAverage.now();
        List<Row> rows = new ArrayList<>();
        Map<String, Long> self = Map.of("monolithic", ProcessHandle.current().pid());
        // The gateway and 2 expert-services only: no router (the bench measures the data path on the fixed even
        // placement) and no kvcache-service (the 8-argument spec leaves it out); on `up`'s default transport and
        // replicas (every instance holds every expert). Started first, so that the two sides' measured runs can
        // alternate (an idle mesh's threads are parked).
        MeshSpec spec = new MeshSpec(model, 2, 2, work.resolve("decode-mesh"), "4g", Duration.ofMinutes(5),
                new MeshHome(home), meshJvmOptions).withoutRouter().withTransport(MeshTransport.hostDefault());
        if (spec.router() || spec.kvcache()) {
            throw new IllegalStateException("bench mesh --decode must start the gateway and the expert-services only");
        }
        try (RunningMesh running = MeshLauncher.up(spec, err, true); MoeModel m = MoeModel.open(model)) {
            int vocab = m.config().vocabSize();
            String[] hp = running.gatewayEndpoint().split(":");
            ManagedChannel ch = NettyChannelBuilder.forAddress(hp[0], Integer.parseInt(hp[1])).usePlaintext().build();
            Map<String, Long> services = new TreeMap<>();
            running.state().services().forEach(s -> services.put(s.name(), s.pid()));
            try {
                for (int n : CONCURRENCY) {
                    rows.add(measure(n, vocab, self, p -> monolithic(m, p), services, p -> viaMesh(ch, p)));
                }
            } finally {
                ch.shutdownNow();
            }
        }
        report(out, spec.transport().label(), rows);
        out.println();
        out.println("load average (1, 5, 15 min): " + loadBefore + " before, " + LoadAverage.now()
                + " after (this bench's own JVMs included)");
        out.flush();
    }

    private Row measure(int n, int vocab, Map<String, Long> self, Side mono, Map<String, Long> services, Side mesh)
            throws Exception {
        int minRuns = JitSettledWarmUp.minRuns(n * OUTPUT);
        JitSettledWarmUp.Outcome monoWarm = JitSettledWarmUp.run(self, minRuns,
                round -> mono.decode(prompts(n, vocab, Phase.WARM_UP, round)));
        JitSettledWarmUp.Outcome meshWarm = JitSettledWarmUp.run(services, minRuns,
                round -> mesh.decode(prompts(n, vocab, Phase.WARM_UP, round)));
        // Both sides decode the same prompts in a round, each round its own.
        List<List<Sample>> samples = AlternatingRounds.run(List.<AlternatingRounds.Measure<Sample>>of(
                round -> sample(self, n, () -> mono.decode(prompts(n, vocab, Phase.MEASURED, round))),
                round -> sample(services, n, () -> mesh.decode(prompts(n, vocab, Phase.MEASURED, round)))),
                rounds, (s, round) -> {
                    err.printf(Locale.ROOT, "%d seqs, round %d/%d: %.1f tok/s%n", n, round, rounds,
                            s.tokensPerSecond());
                    err.flush();
                });
        return new Row(n, monoWarm, meshWarm, samples.get(0), samples.get(1));
    }

    private static Sample sample(Map<String, Long> pids, int sequences, Callable<Double> decode) throws Exception {
        ThreadCpu before = ThreadCpu.of(pids);
        double rate = decode.call();
        List<ThreadCpu.Use> used = ThreadCpu.of(pids).minus(before);
        return new Sample(rate, ThreadCpu.total(used) / ((double) sequences * OUTPUT), used);
    }

    private void report(PrintWriter out, String transport, List<Row> rows) {
        out.println();
        out.println("Decode tokens/s, " + model.getFileName() + ", " + OUTPUT + " tokens after a " + PROMPT
                + "-token prompt, median of " + rounds + " rounds in alternating order (after warm-up runs on other"
                + " prompts until the JIT settled; gateway → experts over " + transport + "):");
        out.println();
        out.println("| sequences | monolithic tok/s | mesh (2 instances) tok/s | mesh ÷ monolithic "
                + "| monolithic CPU ms/token | mesh CPU ms/token | monolithic ÷ mesh CPU |");
        out.println("|---|---|---|---|---|---|---|");
        for (Row r : rows) {
            double monoCpu = Row.cpu(r.mono());
            double meshCpu = Row.cpu(r.mesh());
            out.printf(Locale.ROOT, "| %d | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f |%n", r.sequences(), r.monoRate(),
                    r.meshRate(), r.meshRate() / r.monoRate(), monoCpu * 1e3, meshCpu * 1e3, monoCpu / meshCpu);
        }
        out.println();
        out.println("Each round, in round order (the two sides alternate which goes first):");
        out.println();
        out.println("| sequences | monolithic tok/s per round | mesh tok/s per round | mesh ÷ monolithic per round |");
        out.println("|---|---|---|---|");
        for (Row r : rows) {
            List<String> ratios = new ArrayList<>();
            for (int k = 0; k < r.mono().size(); k++) {
                ratios.add(String.format(Locale.ROOT, "%.2f",
                        r.mesh().get(k).tokensPerSecond() / r.mono().get(k).tokensPerSecond()));
            }
            out.printf(Locale.ROOT, "| %d | %s | %s | %s |%n", r.sequences(), rates(r.mono()), rates(r.mesh()),
                    String.join(" / ", ratios));
        }
        out.println();
        out.println("Warm-up: runs on prompts of their own, at least " + JitSettledWarmUp.MIN_TOKENS
                + " decoded tokens, then until the JIT compiler threads used under "
                + Math.round(100 * JitSettledWarmUp.SETTLED_SHARE) + "% of a run's CPU " + JitSettledWarmUp.QUIET_RUNS
                + " runs in a row (at most " + JitSettledWarmUp.MAX_RUNS + " runs), so the measured rounds are steady"
                + " state on both sides:");
        out.println();
        out.println("| sequences | monolithic warm-up runs | its last run's JIT share | mesh warm-up runs "
                + "| its last run's JIT share | mesh measured rounds' JIT share |");
        out.println("|---|---|---|---|---|---|");
        for (Row r : rows) {
            List<ThreadCpu.Use> meshUse = r.meshUse();
            out.printf(Locale.ROOT, "| %d | %d | %.1f%% | %d | %.1f%% | %.1f%% |%n", r.sequences(), r.monoWarm().runs(),
                    100 * r.monoWarm().lastJitShare(), r.meshWarm().runs(), 100 * r.meshWarm().lastJitShare(),
                    100 * JitSettledWarmUp.jitShare(meshUse));
        }
        out.println();
        out.println("CPU (user + system, /proc; CPU time, not throughput) per decoded token of the mesh's services over"
                + " the measured rounds, by thread kind (digits as #), with wake-ups (voluntary context switches) per"
                + " token; kinds under 1% of the total left out:");
        out.println();
        out.println("| sequences | service | threads | CPU ms/token | share | wake-ups/token |");
        out.println("|---|---|---|---|---|---|");
        for (Row r : rows) {
            List<ThreadCpu.Use> meshUse = r.meshUse();
            double tokens = (double) r.sequences() * OUTPUT * r.mesh().size();
            double total = ThreadCpu.total(meshUse);
            for (ThreadCpu.Use u : meshUse) {
                if (u.cpuSeconds() >= 0.01 * total && total > 0) {
                    out.printf(Locale.ROOT, "| %d | %s | %s | %.3f | %.1f%% | %.1f |%n", r.sequences(), u.service(),
                            u.kind(), u.cpuSeconds() * 1e3 / tokens, 100 * u.cpuSeconds() / total, u.wakeUps() / tokens);
                }
            }
        }
        out.flush();
    }

    private static String rates(List<Sample> samples) {
        return String.join(" / ", samples.stream()
                .map(s -> String.format(Locale.ROOT, "%.1f", s.tokensPerSecond())).toList());
    }

    private static double monolithic(MoeModel m, int[][] prompts) {
        List<GenerationRequest> reqs = new ArrayList<>();
        for (int[] p : prompts) {
            reqs.add(new GenerationRequest(p, new SamplingParams(0, 1, 0, OptionalLong.empty(), OUTPUT, true), false));
        }
        Generator g = new Generator(m.localEngine(), m.newCache(prompts.length * (PROMPT + OUTPUT) + 64), 512);
        long t0 = System.nanoTime();
        g.generate(reqs, TokenListener.NONE);
        return (double) prompts.length * OUTPUT / ((System.nanoTime() - t0) / 1e9);
    }

    private static double viaMesh(ManagedChannel ch, int[][] prompts) throws Exception {
        GatewayServiceGrpc.GatewayServiceStub stub = GatewayServiceGrpc.newStub(ch);
        List<CompletableFuture<Void>> done = new ArrayList<>();
        AtomicInteger tokens = new AtomicInteger();
        long t0 = System.nanoTime();
        for (int[] p : prompts) {
            PromptIds.Builder ids = PromptIds.newBuilder();
            for (int id : p) {
                ids.addTokenIds(id);
            }
            TokenCountingStream stream = new TokenCountingStream(tokens);
            stub.withDeadlineAfter(10, TimeUnit.MINUTES).generate(GenerateRequest.newBuilder().setPromptIds(ids)
                    .setSampling(io.moemesh.proto.gateway.v1.SamplingParams.newBuilder().setMaxTokens(OUTPUT)
                            .setIgnoreEos(true)).build(), stream);
            done.add(stream.done());
        }
        CompletableFuture.allOf(done.toArray(CompletableFuture[]::new)).get(20, TimeUnit.MINUTES);
        return tokens.get() / ((System.nanoTime() - t0) / 1e9);
    }
}
