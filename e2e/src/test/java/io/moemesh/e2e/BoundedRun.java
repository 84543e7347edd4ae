package io.moemesh.e2e;

import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.awaitility.core.ConditionTimeoutException;

/**
 * One run of a child process (npm, node) bounded in time: its stdout and stderr go to a file, never a pipe. Reading a
 * pipe to its end blocks until every process holding it exits, so a hung {@code npm ci} or a stalled stream hung the
 * test before any bound was checked (and a JUnit timeout cannot interrupt that read). Past the bound the whole process
 * tree is killed, so nothing it started outlives the test.
 *
 * @param finished whether the process exited within the bound
 * @param exit     its exit code; -1 when it did not finish
 * @param output   what it wrote to stdout and stderr, in order (up to the kill when it did not finish)
 */
record BoundedRun(boolean finished, int exit, String output) {
    /** How long the killed processes get to exit after SIGKILL (only an unkillable one waits it out). */
    private static final Duration KILL_WAIT = Duration.ofSeconds(10);
    /** How long a killed process that is a zombie gets to be reaped by its parent before the kill goes on. */
    private static final Duration REAP_WAIT = Duration.ofSeconds(5);
    private static final Duration POLL = Duration.ofMillis(10);

    /**
     * Starts {@code pb} with its output redirected to a temporary file and waits up to {@code timeout}; when it has
     * not exited by then (or this thread is interrupted: a JUnit timeout), kills it and every process it started and
     * waits for them to exit.
     */
    static BoundedRun of(ProcessBuilder pb, Duration timeout) throws IOException, InterruptedException {
        Path out = Files.createTempFile("moemesh-e2e-run-", ".out");
        try {
            Process p = pb.redirectErrorStream(true).redirectOutput(out.toFile()).start();
            p.getOutputStream().close();
            boolean finished = false;
            try {
                finished = p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS);
            } finally {
                if (!finished) {
                    killTree(p);
                }
            }
            return new BoundedRun(finished, finished ? p.exitValue() : -1, Files.readString(out, StandardCharsets.UTF_8));
        } finally {
            Files.deleteIfExists(out);
        }
    }

    /**
     * SIGKILL to the process and every process it started, deepest first, each level awaited before its parents are
     * killed: a parent still alive (a shell in {@code wait}, node) reaps its killed child. Killed together, a child
     * whose parent died first went to PID 1, and in a container whose PID 1 reaps nothing it stayed a zombie, which
     * {@link ProcessHandle#isAlive} counts as alive: the wait for it ran out its {@link #KILL_WAIT}. A zombie is
     * therefore awaited only briefly ({@link #REAP_WAIT}): dead, it holds nothing but its pid. Package-private: the
     * launcher runs ({@link LauncherRun}) end their processes so too.
     */
    static void killTree(Process p) {
        try {
            // A process may start children while its own are being killed: a few rounds catch those.
            for (int round = 0; round < 3; round++) {
                List<ProcessHandle> descendants = p.descendants().toList();
                if (descendants.isEmpty()) {
                    break;
                }
                Map<Integer, List<ProcessHandle>> byDepth = new TreeMap<>(Comparator.reverseOrder());
                for (ProcessHandle h : descendants) {
                    byDepth.computeIfAbsent(depth(h, p.pid()), d -> new ArrayList<>()).add(h);
                }
                for (List<ProcessHandle> level : byDepth.values()) {
                    level.forEach(ProcessHandle::destroyForcibly);
                    level.forEach(BoundedRun::awaitDead);
                }
            }
            p.destroyForcibly();
            // this JVM is its parent: onExit is its reaping, a zombie never outlasts it
            p.onExit().get(KILL_WAIT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException | TimeoutException e) {
            // SIGKILL cannot be refused: only an unkillable (D-state) process gets here
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** How many parents {@code h} has below the root {@code rootPid} (1: a child of the root). */
    private static int depth(ProcessHandle h, long rootPid) {
        int depth = 1;
        for (Optional<ProcessHandle> parent = h.parent(); parent.isPresent() && parent.get().pid() != rootPid;
             parent = parent.get().parent()) {
            depth++;
        }
        return depth;
    }

    /**
     * Waits until a killed process is gone, at most {@link #KILL_WAIT}; a zombie (dead, not yet reaped) only
     * {@link #REAP_WAIT} more, for its parent to reap it. Uninterruptible (Awaitility): the kill is finished also
     * when a JUnit timeout interrupts the test.
     */
    private static void awaitDead(ProcessHandle h) {
        try {
            await().atMost(KILL_WAIT).pollInterval(POLL).until(() -> !h.isAlive() || zombie(h.pid()));
            await().atMost(REAP_WAIT).pollInterval(POLL).until(() -> !h.isAlive());
        } catch (ConditionTimeoutException e) {
            // an unkillable (D-state) process, or a parent that does not reap: dead all the same, the kill goes on
        }
    }

    /**
     * Whether {@code pid} is a zombie: dead, not yet reaped by its parent (state Z in /proc/PID/stat, after the
     * command name, which may itself hold spaces and parentheses). False where there is no /proc.
     */
    static boolean zombie(long pid) {
        try {
            String stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"), StandardCharsets.ISO_8859_1);
            int end = stat.lastIndexOf(')');
            return end >= 0 && end + 2 < stat.length() && stat.charAt(end + 2) == 'Z';
        } catch (IOException | RuntimeException e) {
            return false; // gone meanwhile, or no /proc: isAlive decides
        }
    }
}
