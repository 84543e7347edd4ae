package io.moemesh.cli.chaos;

import io.moemesh.cli.mesh.ApiKeyOption;
import io.moemesh.cli.mesh.BundledMeshOptions;
import io.moemesh.cli.mesh.MeshHome;
import io.moemesh.cli.mesh.MeshLauncher;
import io.moemesh.cli.mesh.MeshSpec;
import io.moemesh.cli.mesh.RunningMesh;
import io.moemesh.cli.mesh.ServiceJvmOptions;
import io.moemesh.cli.mesh.TransportOption;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

@Command(name = "chaos", mixinStandardHelpOptions = true,
        description = {"Kill expert-service instances under load and check that nothing is lost: starts a supervised "
                + "local mesh, runs concurrent greedy streams through the gateway while SIGKILLing one instance at a "
                + "time on a schedule (the supervisor restarts it), compares every finished request with the reference "
                + "engine's tokens, then stops the mesh.",
            "stdout: requests, failures, token differences, latency p50/p99 in steady state and during faults, and per "
                + "kill how long the instance took to be restarted, to report SERVING and to carry traffic again."},
        exitCodeListHeading = "%nExit codes:%n",
        exitCodeList = {"0:goals met (at least one kill, 0 failed, 0 token differences, every restarted instance "
                + "carried traffic within 10 s)",
            "1:goals not met", "2:bad input (e.g. --duration not longer than --warmup: no time for a kill)",
            "3:the mesh did not start"})
public final class ChaosCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    BundledMeshOptions mesh = new BundledMeshOptions();

    @Option(names = "--streams", defaultValue = "8", paramLabel = "N", description = "Concurrent streams (default ${DEFAULT-VALUE}).")
    int streams;

    @Option(names = "--duration", defaultValue = "120", paramLabel = "SECONDS",
            description = "Run time: kills are made until it ends; must exceed --warmup, since the goals need at least "
                    + "one kill (default ${DEFAULT-VALUE}).")
    int durationSeconds;

    @Option(names = "--kill-every", defaultValue = "15", paramLabel = "SECONDS",
            description = "Seconds between kills; the next waits until the previous victim carries traffic (default ${DEFAULT-VALUE}).")
    int killEverySeconds;

    @Option(names = "--warmup", defaultValue = "10", paramLabel = "SECONDS", description = "Load before the first kill (default ${DEFAULT-VALUE}).")
    int warmupSeconds;

    @Option(names = "--kills", defaultValue = "0", paramLabel = "N", description = "Stop after N kills (default: until the duration ends).")
    int kills;

    @Option(names = "--max-tokens", defaultValue = "32", paramLabel = "N", description = "Tokens per request (default ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--seed", defaultValue = "1", paramLabel = "S", description = "Seed of the victim order (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--state-dir", paramLabel = "DIR", description = "State of the chaos mesh (default .moemesh/chaos).")
    Path stateDir;

    @Mixin
    ServiceJvmOptions jvm = new ServiceJvmOptions("512m");

    @picocli.CommandLine.Mixin
    TransportOption transport = new TransportOption();

    @Mixin
    ApiKeyOption apiKey = new ApiKeyOption();

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        int experts = mesh.experts();
        int replicas = mesh.replicas();
        if (replicas < 2) {
            throw new IllegalArgumentException("--replicas must be >= 2: chaos kills one instance at a time and every "
                    + "expert needs a live replica meanwhile, got " + replicas);
        }
        ChaosPlan plan = new ChaosPlan(streams, Duration.ofSeconds(durationSeconds), Duration.ofSeconds(killEverySeconds),
                Duration.ofSeconds(warmupSeconds), kills, seed, maxTokens, Duration.ofMinutes(3));
        MeshHome home = MeshHome.detect();
        Path modelDir = mesh.model(home);
        Path dir = stateDir != null ? stateDir : home.defaultStateDir().resolve("chaos");
        // No router: chaos measures the data path under kills on a fixed placement (epoch 1, as up writes it).
        MeshSpec ms = new MeshSpec(modelDir, experts, replicas, dir, jvm.heap(), jvm.timeout(), home, jvm.jvmOptions(),
                MeshSpec.RestartPolicy.ALWAYS).withoutRouter().withTransport(transport.resolve());
        err.println("moemesh chaos: reference completions of " + ReferenceCompletions.DEFAULT_PROMPTS.size() + " prompts");
        err.flush();
        List<ChaosPrompt> prompts = ReferenceCompletions.compute(ms.model(), ReferenceCompletions.DEFAULT_PROMPTS, maxTokens);
        try (RunningMesh mesh = MeshLauncher.up(ms, err, true)) {
            out.printf("chaos: %s, %d instances x %d replicas, %d streams, kill every %d s for %d s%n",
                    modelDir.getFileName(), experts, replicas, streams, killEverySeconds, durationSeconds);
            out.flush();
            ChaosReport report = new ChaosRun(mesh, prompts, plan, err, apiKey.resolve()).run();
            out.print(report.render());
            out.flush();
            return report.goalsMet() ? 0 : 1;
        }
    }
}
