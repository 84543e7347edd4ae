package io.moemesh.cli.bench;

import io.moemesh.cli.mesh.MeshHome;
import io.moemesh.cli.mesh.MeshLauncher;
import io.moemesh.cli.mesh.MeshSpec;
import io.moemesh.cli.mesh.MeshState;
import io.moemesh.cli.mesh.RunningMesh;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.synth.SynthDtype;
import java.io.IOException;
import java.io.PrintWriter;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code moemesh bench kvcache-ttft}: issue 11's goal that a prefix restored from the kvcache-service gives a time to
 * first token ≤ 0.25 of recomputing it (2,000 tokens, synth model M). Real processes: a mesh of one expert-service,
 * the kvcache-service (its SSD tier in {@code <work-dir>/kvcache}, emptied first: refused while a mesh runs in
 * {@code <work-dir>}) and the gateway, started as {@code moemesh up} starts them. Each prompt (random ids, one per
 * length and run) is sent twice, one greedy token each, TTFT measured by the client over the gateway's gRPC stream:
 * <ol>
 *   <li><b>recomputed</b>: on the first gateway, where neither its prefix cache nor the (cold) service has it: the
 *       whole prompt is prefilled. The bench waits until the gateway's write-back has stored the prompt's blocks in
 *       the service before the next prompt (its queue is bounded).</li>
 *   <li><b>restored</b>: on a fresh gateway process (the first one is stopped with SIGTERM, draining its
 *       write-backs, and started again), whose prefix cache is empty, so its admission looks the prefix up in the
 *       service and fetches it instead of prefilling it. Unless {@code --warm-service}, the kvcache-service is
 *       restarted too (its DRAM demoted to the SSD tier at shutdown, the index rebuilt at start) and, once it
 *       reports SERVING and the fresh gateway has been warmed up, the page cache dropped ({@link PageCache},
 *       {@link KvTtftRestart}): the blocks come from the SSD.</li>
 * </ol>
 * Both gateways are warmed up first ({@code --warmup} prompts, restored and recomputed ones on the second).
 */
@Command(name = "kvcache-ttft", mixinStandardHelpOptions = true,
        description = "Time to first token with the prompt's prefix restored from the kvcache-service vs recomputed, "
                + "over prefix lengths, real processes (goal: restored ÷ recomputed <= 0.25 at 2,000 tokens).")
final class KvTtftBenchCommand implements Callable<Integer> {
    static final double GOAL = 0.25;
    static final int GOAL_TOKENS = 2000;

    @Spec
    CommandSpec spec;

    @Option(names = "--model", defaultValue = "M", description = "Synthetic bench model S or M (default ${DEFAULT-VALUE}).")
    String model;

    @Option(names = "--dtype", defaultValue = "f32", description = "f32 or bf16 weights (default ${DEFAULT-VALUE}).")
    String dtype;

    @Option(names = "--model-dir", paramLabel = "DIR", description = "A model directory instead of --model.")
    Path modelDir;

    @Option(names = "--models-dir", paramLabel = "DIR",
            description = "Where synthetic models are cached (default $moemesh.home/target/bench-models).")
    Path modelsDir;

    @Option(names = "--lengths", split = ",", defaultValue = "256,512,1000,2000,4000",
            description = "Prompt lengths in tokens, comma-separated (default ${DEFAULT-VALUE}).")
    int[] lengths;

    @Option(names = "--runs", defaultValue = "5", description = "Prompts per length (default ${DEFAULT-VALUE}).")
    int runs;

    @Option(names = "--warmup", defaultValue = "2",
            description = "Warm-up prompts per gateway, not timed (default ${DEFAULT-VALUE}).")
    int warmup;

    @Option(names = "--warm-service",
            description = "Keep the kvcache-service running between the phases (blocks may come from its DRAM and "
                    + "the page cache); by default it is restarted and, once it reports SERVING, the page cache dropped.")
    boolean warmService;

    @Option(names = "--heap", defaultValue = "4g", description = "-Xmx of the gateway and the expert-service (default ${DEFAULT-VALUE}).")
    String heap;

    @Option(names = "--work-dir", defaultValue = "target/bench-kvcache-ttft", description = "Mesh state and logs.")
    Path workDir;

    @Option(names = "--mesh-jvm-option", paramLabel = "OPTION",
            description = "An extra JVM option for the mesh's services (repeatable).")
    List<String> meshJvmOptions = new ArrayList<>();

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        BenchOptions.positive("--runs", runs);
        BenchOptions.notNegative("--warmup", warmup);
        if (modelDir != null && !Files.isRegularFile(modelDir.resolve("config.json"))) {
            throw new IllegalArgumentException("--model-dir " + modelDir + ": no config.json there");
        }
        SynthDtype weights = SynthDtype.parse(dtype);
        if (lengths.length == 0) {
            throw new IllegalArgumentException("--lengths needs at least one length");
        }
        Path home = Path.of(System.getProperty("moemesh.home", ".")).toAbsolutePath();
        Path state = home.resolve(workDir).toAbsolutePath().normalize();
        // The bench empties <work-dir>/kvcache: a mesh running there (an earlier bench's, or a user's `up`) would lose
        // its acknowledged blocks. Refused before the model is built, then again just before the delete.
        MeshState.refuseIfRunning(state);
        if (modelDir == null) {
            checkLengths(BenchModels.spec(model, weights).maxPosition());
        }
        Path dir = modelDir != null ? modelDir.toAbsolutePath()
                : BenchModels.ensure(modelsDir != null ? modelsDir : BenchModels.defaultCache(), model, weights, err);
        ModelConfig c = ModelConfigReader.read(dir);
        checkLengths(c.maxPositionEmbeddings());
        MeshSpec ms = new MeshSpec(dir, 1, 1, state, heap, Duration.ofMinutes(10), new MeshHome(home), meshJvmOptions,
                MeshSpec.RestartPolicy.NEVER, false, true);
        MeshState.refuseIfRunning(state); // building the model took a while: a mesh may have started since
        deleteTree(ms.kvcacheDir()); // a cold service: nothing stored from an earlier run
        int vocab = c.vocabSize();
        double[][] recomputed = new double[lengths.length][runs];
        double[][] restored = new double[lengths.length][runs];
        int[][] cached = new int[lengths.length][runs];
        String cacheState;
        try (RunningMesh mesh = MeshLauncher.up(ms, err, true)) {
            try (KvTtftClient gw = client(mesh)) {
                for (int w = 0; w < warmup; w++) {
                    gw.generate(prompt(vocab, warmupLength(), -1 - w));
                }
                double settled = gw.settled();
                for (int r = 0; r < runs; r++) {
                    for (int i = 0; i < lengths.length; i++) {
                        KvTtftClient.Outcome o = gw.generate(prompt(vocab, lengths[i], seed(i, r)));
                        if (o.cachedTokens() > 0) {
                            throw new IllegalStateException("a fresh " + lengths[i] + "-token prompt found "
                                    + o.cachedTokens() + " tokens cached");
                        }
                        recomputed[i][r] = o.ttftMillis();
                        settled = gw.awaitWriteBacks(settled, Duration.ofMinutes(2));
                        err.printf(Locale.ROOT, "bench: %d tokens, run %d: recomputed %.1f ms%n", lengths[i], r,
                                o.ttftMillis());
                        err.flush();
                    }
                }
                if (gw.dropped() > 0) {
                    err.printf("bench: warning: the gateway dropped %.0f write-back blocks (queue full)%n", gw.dropped());
                }
            }
            try (Restored phase = new Restored(mesh, ms, vocab, restored, cached, err)) {
                cacheState = KvTtftRestart.run(phase, warmService, err);
            }
        }
        print(out, dir, cacheState, recomputed, restored, cached);
        return 0;
    }

    /** The restored phase's steps on the mesh's processes; closing it closes the fresh gateway's client. */
    private final class Restored implements KvTtftRestart.Steps, AutoCloseable {
        private final RunningMesh mesh;
        private final MeshSpec ms;
        private final int vocab;
        private final double[][] restored;
        private final int[][] cached;
        private final PrintWriter err;
        private KvTtftClient gw;

        Restored(RunningMesh mesh, MeshSpec ms, int vocab, double[][] restored, int[][] cached, PrintWriter err) {
            this.mesh = mesh;
            this.ms = ms;
            this.vocab = vocab;
            this.restored = restored;
            this.cached = cached;
            this.err = err;
        }

        @Override
        public void stop(String service) throws Exception {
            KvTtftBenchCommand.stop(mesh, service);
        }

        @Override
        public void restart(List<String> services) {
            mesh.restart(services, Duration.ofMinutes(10));
            gw = client(mesh);
        }

        @Override
        public void warmUp() {
            for (int w = 0; w < warmup; w++) {
                gw.generate(prompt(vocab, warmupLength(), -1 - w)); // restored
                gw.generate(prompt(vocab, warmupLength(), -1000 - w)); // recomputed
            }
        }

        @Override
        public PageCache.Method dropPageCache() throws IOException {
            return PageCache.drop(files(ms.kvcacheDir()));
        }

        @Override
        public void measure() {
            for (int r = 0; r < runs; r++) {
                for (int i = 0; i < lengths.length; i++) {
                    KvTtftClient.Outcome o = gw.generate(prompt(vocab, lengths[i], seed(i, r)));
                    restored[i][r] = o.ttftMillis();
                    cached[i][r] = o.cachedTokens();
                    err.printf(Locale.ROOT, "bench: %d tokens, run %d: restored %.1f ms (%d cached)%n", lengths[i], r,
                            o.ttftMillis(), o.cachedTokens());
                    err.flush();
                }
            }
        }

        @Override
        public void close() throws InterruptedException {
            if (gw != null) {
                gw.close();
            }
        }
    }

    private void checkLengths(int maxPositions) {
        for (int l : lengths) {
            if (l < 2 || l >= maxPositions) {
                throw new IllegalArgumentException("--lengths must be between 2 and " + (maxPositions - 1)
                        + " (the model's positions, one left to generate), got " + l);
            }
        }
    }

    private int warmupLength() {
        return Arrays.stream(lengths).max().orElseThrow() >= 1024 ? 1024 : Arrays.stream(lengths).max().orElseThrow();
    }

    private static long seed(int length, int run) {
        return 1_000L * length + run;
    }

    /** {@code n} ids drawn from [2, vocab), the same for the same seed (ids 0 and 1 are often BOS / EOS). */
    static int[] prompt(int vocab, int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = 2 + r.nextInt(vocab - 2);
        }
        return ids;
    }

    private static KvTtftClient client(RunningMesh mesh) {
        MeshState.Service g = mesh.state().gateway();
        return new KvTtftClient(g.grpcEndpoint(), g.managementPort());
    }

    /** SIGTERM and wait: the gateway drains its write-backs, the kvcache-service demotes DRAM and forces the SSD. */
    private static void stop(RunningMesh mesh, String name) throws Exception {
        var p = mesh.state().service(name).process();
        if (p.isPresent()) {
            p.get().destroy();
            try {
                p.get().onExit().get(2, TimeUnit.MINUTES);
            } catch (java.util.concurrent.TimeoutException e) {
                p.get().destroyForcibly();
                p.get().onExit().get(30, TimeUnit.SECONDS);
                throw new IllegalStateException(name + " did not stop within 2 minutes of SIGTERM");
            }
        }
    }

    private static List<Path> files(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(Files::isRegularFile).toList();
        }
    }

    private static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }

    private void print(PrintWriter out, Path dir, String cacheState, double[][] recomputed, double[][] restored,
                       int[][] cached) {
        out.println();
        out.printf(Locale.ROOT, "TTFT with a restored prefix, %s: gateway + 1 expert-service + kvcache-service; %d runs "
                        + "per length, one greedy token; restored on a fresh gateway (%s); load average %.2f%n%n",
                dir.getFileName(), runs, cacheState, ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
        out.println("| prompt tokens | recomputed median, ms | recomputed p90, ms | restored median, ms | restored p90, ms "
                + "| cached tokens (min–max) | restored ÷ recomputed |");
        out.println("|---|---|---|---|---|---|---|");
        int goalRow = 0;
        double[] ratios = new double[lengths.length];
        for (int i = 0; i < lengths.length; i++) {
            ratios[i] = Stats.of(restored[i]).median() / Stats.of(recomputed[i]).median();
            int least = Arrays.stream(cached[i]).min().orElse(0);
            int most = Arrays.stream(cached[i]).max().orElse(0);
            out.printf(Locale.ROOT, "| %d | %.1f | %.1f | %.1f | %.1f | %s | %.3f |%n", lengths[i],
                    Stats.of(recomputed[i]).median(), p90(recomputed[i]), Stats.of(restored[i]).median(),
                    p90(restored[i]), least == most ? Integer.toString(least) : least + "–" + most, ratios[i]);
            if (Math.abs(lengths[i] - GOAL_TOKENS) < Math.abs(lengths[goalRow] - GOAL_TOKENS)) {
                goalRow = i;
            }
        }
        out.println();
        out.printf(Locale.ROOT, "Restored ÷ recomputed at %d tokens: %.3f (goal <= %.2f at %d): %s%n", lengths[goalRow],
                ratios[goalRow], GOAL, GOAL_TOKENS, ratios[goalRow] <= GOAL ? "met" : "missed");
        out.flush();
    }

    /** Nearest-rank 90th percentile. */
    static double p90(double[] values) {
        double[] v = values.clone();
        Arrays.sort(v);
        return v[Math.max(0, (int) Math.ceil(0.9 * v.length) - 1)];
    }
}
