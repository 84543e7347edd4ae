package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The supervisor on real processes ({@code sleep} stands in for a service JVM) and a real state directory. */
class MeshSupervisorTest {
    @TempDir
    Path state;
    /** Every process the supervisor started, killed after the test whatever it asserted. */
    private final List<ProcessHandle> started = new CopyOnWriteArrayList<>();

    @AfterEach
    void killStarted() {
        started.forEach(ProcessHandle::destroyForcibly);
    }

    /**
     * A full disk: the supervisor starts a replacement, then mesh.json cannot be written. The new process would run
     * unrecorded (its ports and socket held, no down to stop it), and the supervisor died with the write's
     * exception. Now it kills what it started, keeps supervising, and records the restart once the disk has room.
     */
    @Test
    void restartThatCannotBeRecorded_killsTheProcessItStarted_andSupervisionGoesOn() throws Exception {
        long gone = exitedPid();
        MeshState.Service expert = new MeshState.Service("expert-0", gone, "2026-01-01T00:00:00Z", 1, 2,
                state.resolve("logs").resolve("expert-0.log").toString(), List.of("sleep", "600"), Map.of());
        MeshStates.write(state, new MeshState("/m", 1, 1, state.resolve("placement.json").toString(), List.of(expert),
                null));
        List<Long> attempted = new CopyOnWriteArrayList<>();
        AtomicBoolean diskFull = new AtomicBoolean(true);
        StringWriter log = new StringWriter();
        MeshSupervisor supervisor = new MeshSupervisor(state,
                new RestartBackoff(Duration.ofMillis(50), Duration.ofMillis(200), Duration.ofSeconds(60)),
                new PrintWriter(log), System::nanoTime, s -> {
                    long pid = s.experts().getFirst().pid();
                    attempted.add(pid);
                    ProcessHandle.of(pid).ifPresent(started::add);
                    if (diskFull.get()) {
                        throw new UncheckedIOException(MeshState.file(state) + ": cannot write the mesh state",
                                new IOException("No space left on device"));
                    }
                    s.write(state);
                });
        Thread loop = new Thread(supervisor, "supervisor");
        loop.start();
        try {
            await().atMost(Duration.ofSeconds(20)).until(() -> attempted.size() >= 2);
            for (long pid : attempted.subList(0, 2)) {
                await().atMost(Duration.ofSeconds(10)).until(() -> ProcessHandle.of(pid).filter(ProcessHandle::isAlive)
                        .isEmpty());
            }
            assertThat(loop.isAlive()).as("the supervisor outlived the failed write").isTrue();
            assertThat(MeshState.read(state).orElseThrow().experts().getFirst().pid()).isEqualTo(gone);
            assertThat(log.toString()).contains("could not record the restart of expert-0")
                    .contains("killed its new pid " + attempted.getFirst());

            diskFull.set(false);
            await().atMost(Duration.ofSeconds(20)).until(() ->
                    MeshState.read(state).orElseThrow().experts().getFirst().process().isPresent());
        } finally {
            supervisor.stop();
            loop.join(Duration.ofSeconds(15));
        }
    }

    private static long exitedPid() throws IOException, InterruptedException {
        Process p = new ProcessBuilder("true").start();
        p.waitFor();
        return p.pid();
    }
}
