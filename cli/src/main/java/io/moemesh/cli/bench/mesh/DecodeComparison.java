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
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Decode tokens/s of the same requests through a mesh of 2 expert-service instances and through the reference
 * engine in this process, measured one after the other in the same run: 1 and 32 concurrent sequences, 128
 * tokens each after a 32-token prompt (ignore EOS). Goal (issue): mesh ÷ monolithic ≥ 0.90 at 32. Next to tok/s,
 * the CPU seconds each side spent per decoded token over its measured run ({@link ThreadCpu}: this JVM for the
 * monolithic engine, the gateway and both expert-services for the mesh), which a shared machine's load hardly
 * moves, and the mesh's split by service and thread kind with its wake-ups per token.
 */
final class DecodeComparison {
    private static final int PROMPT = 32;
    private static final int OUTPUT = 128;

    private final Path home;
    private final Path model;
    private final Path work;
    private final PrintWriter err;
    private final List<String> meshJvmOptions;

    DecodeComparison(Path home, Path model, Path work, PrintWriter err, List<String> meshJvmOptions) {
        this.home = home;
        this.model = model.toAbsolutePath();
        this.work = work;
        this.err = err;
        this.meshJvmOptions = List.copyOf(meshJvmOptions);
    }

    /**
     * {@code n} prompts of their own: the warm-up and the measured run of each sequence count, and the two counts,
     * use different seeds, so no measured prompt was seen before and a prefix cache (the gateway's, or a kvcache
     * tier) cannot favour either side.
     */
    static int[][] prompts(int n, int vocab, Phase phase, int round) {
        SplittableRandom r = new SplittableRandom(phase == Phase.WARM_UP ? 1_000_003L * n + 7_919L * round
                : 42L * n + 7);
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

    void run(PrintWriter out) throws Exception {
        int[] concurrency = {1, 32};
        double[] mono = new double[2];
        double[] mesh = new double[2];
        // CPU seconds per decoded token (ThreadCpu): unlike tok/s, hardly moved by what else the machine runs.
        double[] monoCpu = new double[2];
        double[] meshCpu = new double[2];
        List<List<ThreadCpu.Use>> meshUse = new ArrayList<>();
        JitSettledWarmUp.Outcome[] monoWarm = new JitSettledWarmUp.Outcome[2];
        JitSettledWarmUp.Outcome[] meshWarm = new JitSettledWarmUp.Outcome[2];
        double[] meshJit = new double[2];
        Map<String, Long> self = Map.of("monolithic", ProcessHandle.current().pid());
        int vocab;
        try (MoeModel m = MoeModel.open(model)) {
            vocab = m.config().vocabSize();
            for (int i = 0; i < concurrency.length; i++) {
                int n = concurrency[i];
                monoWarm[i] = JitSettledWarmUp.run(self, round -> monolithic(m, prompts(n, vocab, Phase.WARM_UP, round)));
                ThreadCpu before = ThreadCpu.of(self);
                mono[i] = monolithic(m, prompts(n, vocab, Phase.MEASURED, 0));
                monoCpu[i] = ThreadCpu.total(ThreadCpu.of(self).minus(before)) / ((double) concurrency[i] * OUTPUT);
                err.printf("monolithic %d seqs: %.1f tok/s%n", concurrency[i], mono[i]);
                err.flush();
            }
        }
        // The gateway and 2 expert-services only: no router (the bench measures the data path on the fixed even
        // placement) and no kvcache-service (the 8-argument spec leaves it out); on `up`'s default transport.
        MeshSpec spec = new MeshSpec(model, 2, 1, work.resolve("decode-mesh"), "4g", Duration.ofMinutes(5),
                new MeshHome(home), meshJvmOptions).withoutRouter().withTransport(MeshTransport.hostDefault());
        if (spec.router() || spec.kvcache()) {
            throw new IllegalStateException("bench mesh --decode must start the gateway and the expert-services only");
        }
        try (RunningMesh running = MeshLauncher.up(spec, err, true)) {
            String[] hp = running.gatewayEndpoint().split(":");
            ManagedChannel ch = NettyChannelBuilder.forAddress(hp[0], Integer.parseInt(hp[1])).usePlaintext().build();
            Map<String, Long> services = new TreeMap<>();
            running.state().services().forEach(s -> services.put(s.name(), s.pid()));
            try {
                for (int i = 0; i < concurrency.length; i++) {
                    int n = concurrency[i];
                    meshWarm[i] = JitSettledWarmUp.run(services,
                            round -> viaMesh(ch, prompts(n, vocab, Phase.WARM_UP, round)));
                    ThreadCpu before = ThreadCpu.of(services);
                    mesh[i] = viaMesh(ch, prompts(n, vocab, Phase.MEASURED, 0));
                    List<ThreadCpu.Use> used = ThreadCpu.of(services).minus(before);
                    meshUse.add(used);
                    meshJit[i] = JitSettledWarmUp.jitShare(used);
                    meshCpu[i] = ThreadCpu.total(used) / ((double) concurrency[i] * OUTPUT);
                    err.printf("mesh %d seqs: %.1f tok/s%n", concurrency[i], mesh[i]);
                    err.flush();
                }
            } finally {
                ch.shutdownNow();
            }
        }
        out.println();
        out.println("Decode tokens/s, " + model.getFileName() + ", " + OUTPUT + " tokens after a " + PROMPT
                + "-token prompt (after warm-up runs on other prompts until the JIT settled; gateway → experts over "
                + spec.transport().label() + "):");
        out.println();
        out.println("| sequences | monolithic tok/s | mesh (2 instances) tok/s | mesh ÷ monolithic "
                + "| monolithic CPU ms/token | mesh CPU ms/token | monolithic ÷ mesh CPU |");
        out.println("|---|---|---|---|---|---|---|");
        for (int i = 0; i < concurrency.length; i++) {
            out.printf(Locale.ROOT, "| %d | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f |%n", concurrency[i], mono[i],
                    mesh[i], mesh[i] / mono[i], monoCpu[i] * 1e3, meshCpu[i] * 1e3, monoCpu[i] / meshCpu[i]);
        }
        out.println();
        out.println("Warm-up: runs on prompts of their own until the JIT compiler threads used under "
                + Math.round(100 * JitSettledWarmUp.SETTLED_SHARE) + "% of a run's CPU (at most "
                + JitSettledWarmUp.MAX_RUNS + " runs), so the measured run is steady state on both sides:");
        out.println();
        out.println("| sequences | monolithic warm-up runs | its last run's JIT share | mesh warm-up runs "
                + "| its last run's JIT share | mesh measured run's JIT share |");
        out.println("|---|---|---|---|---|---|");
        for (int i = 0; i < concurrency.length; i++) {
            out.printf(Locale.ROOT, "| %d | %d | %.1f%% | %d | %.1f%% | %.1f%% |%n", concurrency[i], monoWarm[i].runs(),
                    100 * monoWarm[i].lastJitShare(), meshWarm[i].runs(), 100 * meshWarm[i].lastJitShare(),
                    100 * meshJit[i]);
        }
        out.println();
        out.println("CPU (user + system, /proc; CPU time, not throughput) per decoded token of the mesh's services, by"
                + " thread kind (digits as #), with wake-ups (voluntary context switches) per token; kinds under 1%"
                + " of the total left out:");
        out.println();
        out.println("| sequences | service | threads | CPU ms/token | share | wake-ups/token |");
        out.println("|---|---|---|---|---|---|");
        for (int i = 0; i < meshUse.size(); i++) {
            double tokens = (double) concurrency[i] * OUTPUT;
            double total = ThreadCpu.total(meshUse.get(i));
            for (ThreadCpu.Use u : meshUse.get(i)) {
                if (u.cpuSeconds() >= 0.01 * total && total > 0) {
                    out.printf(Locale.ROOT, "| %d | %s | %s | %.3f | %.1f%% | %.1f |%n", concurrency[i], u.service(),
                            u.kind(), u.cpuSeconds() * 1e3 / tokens, 100 * u.cpuSeconds() / total, u.wakeUps() / tokens);
                }
            }
        }
        out.flush();
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
