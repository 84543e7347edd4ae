package io.moemesh.e2e;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/** One run of the repository's {@code ./moemesh} script, as a user starts it: exit code, stdout, stderr. */
record LauncherRun(int exit, String out, String err) {
    private static final AtomicInteger RUNS = new AtomicInteger();
    /** The runs not finished yet. */
    private static final Set<Process> RUNNING = ConcurrentHashMap.newKeySet();

    /**
     * Runs the launcher from the repository root, output to files in {@code runs} (no pipe to fill up), bounded
     * in time: on timeout the process tree is killed and the test fails naming the output files.
     */
    static LauncherRun of(Path runs, Duration timeout, String... args) throws IOException, InterruptedException {
        Path root = io.moemesh.model.golden.TestModels.repoRoot();
        List<String> cmd = new ArrayList<>(List.of(root.resolve("moemesh").toString()));
        cmd.addAll(List.of(args));
        Files.createDirectories(runs);
        int n = RUNS.incrementAndGet();
        Path out = runs.resolve(n + "-" + args[0] + ".out");
        Path err = runs.resolve(n + "-" + args[0] + ".err");
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(root.toFile())
                .redirectOutput(out.toFile()).redirectError(err.toFile());
        pb.environment().remove("MOEMESH_REBUILD");
        Process p = pb.start();
        RUNNING.add(p);
        try {
            p.getOutputStream().close();
            if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                BoundedRun.killTree(p);
                throw new AssertionError("./moemesh " + String.join(" ", args) + " did not finish within " + timeout
                        + "; output in " + out + ", " + err);
            }
        } finally {
            RUNNING.remove(p);
        }
        return new LauncherRun(p.exitValue(), Files.readString(out), Files.readString(err));
    }

    /**
     * Kills every run still going, with all it started (a shutdown hook's cleanup when the test JVM dies during
     * {@code ./moemesh up}): the launch's lock goes with its JVM, so a {@code down} run next stops what it recorded
     * at once, instead of waiting for a launch nobody will use.
     */
    static void killRunning() {
        RUNNING.forEach(BoundedRun::killTree);
    }
}
