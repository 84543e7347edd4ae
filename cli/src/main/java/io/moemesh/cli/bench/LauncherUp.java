package io.moemesh.cli.bench;

import io.moemesh.cli.mesh.MeshException;
import io.moemesh.cli.mesh.MeshSpec;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * {@code moemesh up} timed as a user runs it: the launcher script as a child process, from its start until it exits
 * (it returns once every service reports SERVING), so the launcher JVM's own start and work count, with the JIT
 * options the script gives it. Its CPU seconds come from polling the launcher JVM's {@code /proc} counters every
 * {@link #POLL_MS} ms while it runs (the last poll before it exits, so up to one interval's worth is missed); each
 * service's from its {@code /proc} counters when the launcher reports it SERVING ({@link ServingCpu}).
 */
final class LauncherUp {
    static final long POLL_MS = 100;

    /**
     * @param seconds process start → exit, every service SERVING
     * @param secondsToLaunch process start → its "starting" line, printed just before it starts the service JVMs
     * @param launcherCpu the launcher JVM's CPU time (its last poll)
     * @param servicesAtServing each service's CPU time when the launcher reported it SERVING, by mesh name
     */
    record Result(double seconds, double secondsToLaunch, ProcessCpu launcherCpu,
                  Map<String, ProcessCpu> servicesAtServing) {
    }

    private LauncherUp() {
    }

    /** The command line: {@code script up} with the spec's model, experts, state folder and JVM options. */
    static List<String> command(Path script, MeshSpec ms) {
        List<String> cmd = new ArrayList<>(List.of(script.toString(), "up", "--model", ms.model().toString(),
                "--experts", Integer.toString(ms.experts()), "--state-dir", ms.stateDir().toString(),
                "--restart", "never", "--heap", ms.heap(), "--timeout", Long.toString(ms.startTimeout().toSeconds())));
        ms.jvmOptions().forEach(o -> cmd.add("--jvm-option=" + o));
        return cmd;
    }

    static Result run(Path script, MeshSpec ms, Map<String, String> env) {
        ProcessBuilder pb = new ProcessBuilder(command(script, ms)).redirectOutput(ProcessBuilder.Redirect.DISCARD);
        pb.environment().putAll(env);
        long t0 = System.nanoTime();
        Process p;
        try {
            p = pb.start();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot run " + script, e);
        }
        Deque<String> lastLines = new ArrayDeque<>();
        long[] launchedAt = {-1};
        ServingCpu serving = new ServingCpu(ProcessCpu::of);
        Thread reader = Thread.ofPlatform().daemon().name("bench-startup-up-stderr").start(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getErrorStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) {
                    serving.accept(line);
                    synchronized (lastLines) {
                        if (launchedAt[0] < 0 && line.startsWith("moemesh up: starting ")) {
                            launchedAt[0] = System.nanoTime();
                        }
                        lastLines.addLast(line);
                        if (lastLines.size() > 20) {
                            lastLines.removeFirst();
                        }
                    }
                }
            } catch (IOException e) {
                // the child's stderr closed: it exited
            }
        });
        ProcessCpu cpu = ProcessCpu.ZERO;
        Optional<ProcessHandle> jvm = Optional.empty();
        try {
            while (p.isAlive()) {
                if (jvm.isEmpty()) {
                    jvm = p.toHandle().descendants().filter(h -> h.info().commandLine()
                            .filter(c -> c.contains("io.moemesh.cli.Main")).isPresent()).findFirst();
                }
                Optional<ProcessCpu> now = jvm.flatMap(h -> ProcessCpu.of(h.pid()));
                // An exiting JVM's threads are gone before its process: such a poll has the total but no split.
                if (now.isPresent() && now.get().main() + now.get().c1() + now.get().c2() + now.get().gc() > 0) {
                    cpu = now.get();
                }
                Thread.sleep(POLL_MS);
            }
            int exit = p.waitFor();
            double seconds = (System.nanoTime() - t0) / 1e9;
            reader.join(5_000);
            synchronized (lastLines) {
                if (exit != 0) {
                    // up's own exit codes: 2 = bad input (the bench's options), 3 = the mesh did not come up;
                    // 4 (a down stopping the mesh it brought up) fails the run as any other
                    String why = "`moemesh up` exited with " + exit + ": " + String.join(" | ", lastLines);
                    if (exit == 2) {
                        throw new IllegalArgumentException(why);
                    }
                    if (exit == MeshException.EXIT_CODE) {
                        throw new MeshException(why);
                    }
                    throw new IllegalStateException(why);
                }
                return new Result(seconds, launchedAt[0] < 0 ? Double.NaN : (launchedAt[0] - t0) / 1e9, cpu,
                        serving.atServing());
            }
        } catch (InterruptedException e) {
            p.destroy();
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while `moemesh up` ran", e);
        }
    }
}
