package io.moemesh.cli.bench;

import io.moemesh.cli.mesh.MeshHome;
import io.moemesh.cli.mesh.MeshLauncher;
import io.moemesh.cli.mesh.MeshSpec;
import io.moemesh.cli.mesh.MeshState;
import io.moemesh.cli.mesh.RunningMesh;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.engine.ExpertWeights;
import io.moemesh.model.safetensors.TensorStore;
import io.moemesh.model.synth.SynthDtype;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code moemesh bench prefetch}: issue 10's prefetch goal. The same decode workload through two meshes of 2
 * expert-service instances whose resident sets hold half their assignment ({@code moemesh.expert.memory-budget-bytes}
 * = ⌈assigned experts ÷ 2⌉ × one expert's bytes), first with lookahead prefetch off, then on
 * ({@code moemesh.gateway.dispatch.lookahead-prefetch.enabled}); side by side: the resident-set misses on the
 * critical path (Σ {@code moemesh_expert_resident_misses_total} of both instances over the workload), prefetch
 * hits and wasted prefetches, decode tokens/s and the gateway's online lookahead recall; and the share of the
 * misses prefetch removed (goal ≥ 80%).
 */
@Command(name = "prefetch", mixinStandardHelpOptions = true,
        description = "Critical-path resident-set misses, decode tokens/s and lookahead recall with lookahead prefetch "
                + "off and on, expert services holding half their assignment (goal: >= 80%% of the misses removed).")
final class PrefetchBenchCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--model", defaultValue = "M", description = "Synthetic bench model S or M (default ${DEFAULT-VALUE}).")
    String model;

    @Option(names = "--model-dir", paramLabel = "DIR", description = "A model directory instead of --model.")
    Path modelDir;

    @Option(names = "--models-dir", description = "Where synthetic models are cached (default target/bench-models).")
    Path modelsDir;

    @Option(names = "--sequences", defaultValue = "8", description = "Concurrent sequences (default ${DEFAULT-VALUE}).")
    int sequences;

    @Option(names = "--tokens", defaultValue = "64", description = "Tokens decoded per sequence (default ${DEFAULT-VALUE}).")
    int tokens;

    @Option(names = "--prompt", defaultValue = "32", description = "Prompt tokens per sequence (default ${DEFAULT-VALUE}).")
    int prompt;

    @Option(names = "--lookahead-top-k", defaultValue = "0",
            description = "Experts predicted per token and layer (moemesh.gateway.dispatch.lookahead-prefetch.top-k); "
                    + "0 = the model's top-k (default ${DEFAULT-VALUE}).")
    int lookaheadTopK;

    @Option(names = "--work-dir", defaultValue = "target/bench-prefetch", description = "Mesh state and logs.")
    Path workDir;

    @Option(names = "--mesh-jvm-option", paramLabel = "OPTION",
            description = "An extra JVM option for the mesh's services (repeatable).")
    List<String> meshJvmOptions = new ArrayList<>();

    @Override
    public Integer call() throws Exception {
        BenchOptions.positive("--sequences", sequences);
        BenchOptions.positive("--tokens", tokens);
        BenchOptions.positive("--prompt", prompt);
        BenchOptions.notNegative("--lookahead-top-k", lookaheadTopK);
        if (modelDir != null && !Files.isRegularFile(modelDir.resolve("config.json"))) {
            throw new IllegalArgumentException("--model-dir " + modelDir + ": no config.json there");
        }
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        Path home = Path.of(System.getProperty("moemesh.home", ".")).toAbsolutePath();
        Path dir = modelDir != null ? modelDir.toAbsolutePath()
                : BenchModels.ensure(modelsDir != null ? modelsDir : BenchModels.defaultCache(), model, SynthDtype.BF16, err);
        ModelConfig c = ModelConfigReader.read(dir);
        if (prompt + tokens > c.maxPositionEmbeddings()) {
            throw new IllegalArgumentException("--prompt + --tokens must fit the model's context of "
                    + c.maxPositionEmbeddings() + ", got " + (prompt + tokens));
        }
        long expertBytes;
        try (TensorStore store = TensorStore.open(dir)) {
            expertBytes = ExpertWeights.load(store, c, new ExpertKey(0, 0)).byteSize();
        }
        // The even deal of 2 instances: each holds half of every layer's experts (the shared one goes to one).
        long assigned = (long) c.numLayers() * c.dispatchableExperts() / 2;
        long budget = (assigned + 1) / 2 * expertBytes;
        int[][] prompts = PrefetchWorkload.prompts(sequences, prompt, c.vocabSize());
        PrefetchWorkload.Result[] r = new PrefetchWorkload.Result[2];
        for (int on = 0; on < 2; on++) {
            List<String> jvm = new ArrayList<>(meshJvmOptions);
            jvm.add("-Dmoemesh.expert.memory-budget-bytes=" + budget);
            jvm.add("-Dmoemesh.gateway.dispatch.lookahead-prefetch.enabled=" + (on == 1));
            jvm.add("-Dmoemesh.gateway.dispatch.lookahead-prefetch.top-k=" + lookaheadTopK);
            // No router: its LoadAssignment of epoch 1 would preload the whole assignment into the resident sets
            // the bench starts from; the bench measures prefetch on the fixed even placement.
            MeshSpec ms = new MeshSpec(dir, 2, 1, home.resolve(workDir).resolve(on == 1 ? "on" : "off"), "2g",
                    Duration.ofMinutes(5), new MeshHome(home), jvm).withoutRouter();
            err.printf("moemesh bench prefetch: mesh with lookahead prefetch %s, resident budget %d bytes per instance%n",
                    on == 1 ? "on" : "off", budget);
            err.flush();
            try (RunningMesh mesh = MeshLauncher.up(ms, err, true)) {
                List<MeshState.Service> experts = mesh.state().experts();
                r[on] = PrefetchWorkload.run(mesh.gatewayEndpoint(), experts.stream().map(MeshState.Service::managementPort)
                        .toList(), mesh.state().gateway().managementPort(), prompts, tokens);
            }
        }
        print(out, dir, c, assigned, budget, expertBytes, r);
        return 0;
    }

    private void print(PrintWriter out, Path dir, ModelConfig c, long assigned, long budget, long expertBytes,
                       PrefetchWorkload.Result[] r) {
        out.println();
        out.printf(Locale.ROOT, "Lookahead prefetch, %s: 2 expert instances, %d experts assigned each, resident budget "
                        + "%d bytes (%d experts of %d bytes), %d sequences x %d tokens after a %d-token prompt:%n",
                dir.getFileName(), assigned, budget, budget / expertBytes, expertBytes, sequences, tokens, prompt);
        out.printf(Locale.ROOT, "lookahead guesses per token and layer: %d%n",
                lookaheadTopK > 0 ? Math.min(lookaheadTopK, c.numExperts()) : c.topK());
        out.println();
        out.println("| prefetch | critical-path misses | resident hits | prefetch hits | prefetch wasted | hints sent | "
                + "decode tok/s | lookahead recall |");
        out.println("|---|---|---|---|---|---|---|---|");
        String[] names = {"off", "on"};
        for (int i = 0; i < 2; i++) {
            out.printf(Locale.ROOT, "| %s | %d | %d | %d | %d | %d | %.1f | %s |%n", names[i], r[i].misses(), r[i].hits(),
                    r[i].prefetchHits(), r[i].prefetchWasted(), r[i].hintsSent(), r[i].tokensPerSecond(),
                    i == 0 ? "-" : String.format(Locale.ROOT, "%.3f", r[i].recall()));
        }
        double removed = r[0].misses() == 0 ? 0 : 1.0 - (double) r[1].misses() / r[0].misses();
        out.println();
        out.printf(Locale.ROOT, "Misses removed by prefetch: %.1f%% (goal >= 80%%): %s%n", 100 * removed,
                removed >= 0.80 ? "met" : "missed");
        out.flush();
    }
}
