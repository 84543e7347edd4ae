package io.moemesh.cli.mesh;

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

@Command(name = "down", mixinStandardHelpOptions = true,
        description = "Stop the mesh `moemesh up` started in the state directory: SIGTERM to the supervisor first "
                + "(given --grace, but at least 12 s and at most 15 s: it records a restart in progress before it "
                + "exits), then to the gateway (it lets in-flight requests finish within its shutdown-grace, then "
                + "drains its queued KV write-backs; given at least its shutdown-grace + 5 s + its write-back drain "
                + "timeout + 25 s, 70 s with its defaults), then to the kvcache-service (it persists every acknowledged "
                + "block; given at least its shutdown-grace + 10 s + 30 s + its DRAM tier's bytes at 100 MB/s + 15 s, "
                + "68 s with its defaults), then to the others; SIGKILL to those still running after the grace period. "
                + "Logs stay in <state-dir>/logs, the kvcache-service's SSD tier in <state-dir>/kvcache. While a "
                + "`moemesh up` is still starting a mesh there (it holds <state-dir>/.lock), down first waits for it "
                + "to finish (--launch-wait), then stops that mesh. Exits 0 also when no mesh is running; 2 when the "
                + "up still runs after --launch-wait (nothing is stopped then).")
public final class DownCommand implements Callable<Integer> {
    /**
     * How long {@code moemesh down} waits by default for a launch still starting a mesh in its state directory: more
     * than {@code up} takes with its defaults (the AOT caches' training runs and 180 s for the services to become
     * healthy). Only this command waits so long: a cleanup in code ({@link MeshLauncher#down(Path, Duration)}) waits
     * for no launch.
     */
    static final Duration DEFAULT_LAUNCH_WAIT = Duration.ofSeconds(600);

    @Spec
    CommandSpec spec;

    @Mixin
    StateDirOption stateDir = new StateDirOption();

    @Option(names = "--grace", defaultValue = "20", paramLabel = "SECONDS",
            description = "Time for a graceful shutdown before SIGKILL, per stage; the supervisor, the gateway and the "
                    + "kvcache-service get at least the time above (default ${DEFAULT-VALUE}).")
    int graceSeconds;

    @Option(names = "--launch-wait", paramLabel = "SECONDS",
            description = "How long to wait for a `moemesh up` still starting a mesh in the state directory to finish "
                    + "before stopping it; past it, exit 2 and nothing stopped (default ${DEFAULT-VALUE}: more than up "
                    + "takes with its defaults).")
    int launchWaitSeconds = (int) DEFAULT_LAUNCH_WAIT.toSeconds();

    @Override
    public Integer call() {
        if (graceSeconds < 0) {
            throw new IllegalArgumentException("--grace must be >= 0 seconds, got " + graceSeconds);
        }
        if (launchWaitSeconds < 0) {
            throw new IllegalArgumentException("--launch-wait must be >= 0 seconds, got " + launchWaitSeconds);
        }
        PrintWriter out = spec.commandLine().getOut();
        Path dir = stateDir.resolve();
        // progress (the wait for a launch) to stderr: stdout is the report
        List<String> report = MeshLauncher.down(dir, Duration.ofSeconds(graceSeconds),
                Duration.ofSeconds(launchWaitSeconds), spec.commandLine().getErr());
        if (report.isEmpty()) {
            out.println("no mesh running (no " + MeshState.file(dir) + ")");
        } else {
            report.forEach(out::println);
        }
        out.flush();
        return 0;
    }
}
