package io.moemesh.e2e;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

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

    /** SIGKILL to the process and its descendants (listed first: once it is dead they are re-parented). */
    private static void killTree(Process p) {
        List<ProcessHandle> tree = new java.util.ArrayList<>(p.descendants().toList());
        tree.add(p.toHandle());
        tree.forEach(ProcessHandle::destroyForcibly);
        for (ProcessHandle h : tree) {
            try {
                h.onExit().get(KILL_WAIT.toMillis(), TimeUnit.MILLISECONDS);
            } catch (ExecutionException | TimeoutException e) {
                // SIGKILL cannot be refused: only an unkillable (D-state) process gets here
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }
}
