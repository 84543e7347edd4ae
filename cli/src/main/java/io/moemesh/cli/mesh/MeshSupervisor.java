package io.moemesh.cli.mesh;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;
import java.util.function.LongSupplier;

/**
 * Restarts the services of a local mesh that exit, like a pod's {@code restartPolicy: Always}: every poll it reads
 * {@code <state>/mesh.json}; a service whose recorded process is gone is started again with its recorded command
 * and settings (same ports, instance id and placement file) once {@link RestartBackoff} allows, and its new pid is
 * written back, so {@code down} stops the new process. It ends when the mesh's state file is removed ({@code down})
 * or {@link #stop()} is called (SIGTERM). It never waits for health: a restarted service that fails again is simply
 * restarted later, with a longer wait. A restart it cannot record (mesh.json cannot be written: a full disk) is undone:
 * the process it started is killed at once, since no {@code down} would know of it, and the restart is tried again
 * with the backoff of one more exit; the loop itself outlives any failure of one poll.
 */
public final class MeshSupervisor implements Runnable {
    static final Duration POLL = Duration.ofMillis(200);
    /** How long {@link #stop()} waits for a restart in progress to be recorded ({@code down} allows for it). */
    static final Duration STOP_WAIT = Duration.ofSeconds(10);
    /** How long a process started but not recorded may take to die of SIGKILL (a D-state process: longer). */
    static final Duration UNRECORDED_KILL_WAIT = Duration.ofSeconds(10);

    private final Path stateDir;
    private final RestartBackoff backoff;
    private final PrintWriter log;
    private final LongSupplier nanoClock;
    private final Consumer<MeshState> writeState;
    private volatile boolean stopping;
    private volatile boolean started;
    /** Counted down when the loop has ended (not when its thread ends: after SIGTERM main blocks in System.exit). */
    private final CountDownLatch ended = new CountDownLatch(1);

    public MeshSupervisor(Path stateDir, PrintWriter log) {
        this(stateDir, RestartBackoff.standard(), log, System::nanoTime);
    }

    MeshSupervisor(Path stateDir, RestartBackoff backoff, PrintWriter log, LongSupplier nanoClock) {
        this(stateDir, backoff, log, nanoClock, s -> s.write(stateDir));
    }

    /** @param writeState writes mesh.json (tests: one that fails as a full disk does) */
    MeshSupervisor(Path stateDir, RestartBackoff backoff, PrintWriter log, LongSupplier nanoClock,
                   Consumer<MeshState> writeState) {
        this.stateDir = stateDir;
        this.backoff = backoff;
        this.log = log;
        this.nanoClock = nanoClock;
        this.writeState = writeState;
    }

    @Override
    public void run() {
        started = true;
        try {
            loop();
        } finally {
            ended.countDown();
        }
    }

    private void loop() {
        say("supervising the mesh in " + stateDir + " (pid " + ProcessHandle.current().pid() + ")");
        while (!stopping) {
            Optional<MeshState> state;
            try {
                state = MeshState.read(stateDir);
            } catch (IllegalArgumentException e) {
                say("cannot read the mesh state, retrying: " + e.getMessage());
                pause();
                continue;
            }
            if (state.isEmpty()) {
                say("the mesh state is gone (down): stopping");
                return;
            }
            for (MeshState.Service s : state.get().services()) {
                if (stopping) {
                    break;
                }
                try {
                    check(s);
                } catch (RuntimeException e) {
                    // one service's trouble (the state lock's file, a start) must not end the supervision of all
                    say("cannot check " + s.name() + ", retrying: " + e.getMessage());
                }
            }
            pause();
        }
        say("stopped");
    }

    /** Asks the loop to end and waits (bounded) for a restart in progress to be recorded. */
    public void stop() {
        stopping = true;
        if (!started) {
            return;
        }
        try {
            ended.await(STOP_WAIT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void check(MeshState.Service s) {
        long now = nanoClock.getAsLong();
        if (s.process().isPresent()) {
            backoff.running(s.name(), s.pid(), now);
            return;
        }
        long notBefore = backoff.exited(s.name(), s.pid(), now);
        if (notBefore - now > 0) {
            return;
        }
        // Under the state lock, and only if nobody restarted it meanwhile (a test, another tool): then the entry's
        // pid has changed and is alive.
        ProcessHandle[] started = {null};
        try {
            MeshState.update(stateDir, current -> current.flatMap(cur -> {
                MeshState.Service c = cur.services().stream().filter(x -> x.name().equals(s.name())).findFirst()
                        .orElse(null);
                if (c == null || c.pid() != s.pid() || c.process().isPresent() || stopping) {
                    return Optional.empty();
                }
                ProcessHandle p;
                try {
                    p = ServiceProcess.start(c).toHandle();
                } catch (RuntimeException e) {
                    say("cannot start " + c.name() + ": " + e.getMessage() + "; trying again in "
                            + retryIn(c.name()));
                    return Optional.empty();
                }
                started[0] = p;
                say("restarted " + c.name() + " (pid " + c.pid() + " exited; new pid " + p.pid() + ", restart #"
                        + (c.restarts() + 1) + ", " + backoff.crashes(c.name()) + " exit(s) in a row)");
                return Optional.of(cur.withService(c.restartedAs(p)));
            }), writeState);
        } catch (RuntimeException e) {
            if (started[0] == null) {
                throw e;
            }
            // Not in mesh.json, the new process would hold the service's ports and socket with no down to stop it.
            ProcessHandle p = started[0];
            p.destroyForcibly();
            try {
                p.onExit().get(UNRECORDED_KILL_WAIT.toMillis(), TimeUnit.MILLISECONDS);
            } catch (InterruptedException ie) {
                Thread.currentThread().interrupt();
            } catch (ExecutionException | TimeoutException ignored) {
                // SIGKILL cannot be refused; an unkillable (D-state) process is logged as such below
            }
            say("could not record the restart of " + s.name() + " (" + e.getMessage() + "): killed its new pid "
                    + p.pid() + (p.isAlive() ? " (still exiting)" : "") + "; trying again in " + retryIn(s.name()));
        }
    }

    /** Backs off a restart that did not take (as one more exit in a row) and says after how long it is tried again. */
    private String retryIn(String service) {
        long now = nanoClock.getAsLong();
        return Duration.ofNanos(Math.max(0, backoff.failedStart(service, now) - now)).toMillis() + " ms";
    }

    private void pause() {
        try {
            Thread.sleep(POLL);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            stopping = true;
        }
    }

    private void say(String line) {
        log.println(Instant.now() + " moemesh supervisor: " + line);
        log.flush();
    }
}
