package io.moemesh.cli.mesh;

import io.grpc.ChannelCredentials;
import io.grpc.InsecureChannelCredentials;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.service.placement.PlacementFiles;
import io.moemesh.service.placement.PlacementTable;
import io.moemesh.service.tls.CertificateDirectory;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.BiFunction;

/** A mesh started by {@link MeshLauncher#up}: its recorded state, and stop / kill / restart of its services. */
public final class RunningMesh implements AutoCloseable {
    static final Duration STOP_GRACE = Duration.ofSeconds(20);

    private final Path stateDir;
    private final ModelConfig config;
    private volatile MeshState state;
    private volatile Runnable onClose = () -> { };
    /**
     * While {@link MeshLauncher#up} starts it: {@link #state} is what this process started (held in memory, written
     * to mesh.json), not whatever mesh.json on disk lists.
     */
    private volatile boolean launching;
    /**
     * Set (under this mesh's monitor) when the stop of a launch began: a Ctrl-C's hook or a failure. From then on
     * the launch starts nothing ({@link #startDuringLaunch}), so the stop's snapshot of what was started is all
     * there is.
     */
    private boolean aborted;
    private volatile Thread exitHook;
    /** The pid of a {@code moemesh down} that waited for this launch to end, to stop the mesh then; 0 = none. */
    private volatile long stopAskedBy;

    RunningMesh(Path stateDir, MeshState state, ModelConfig config) {
        this.stateDir = stateDir;
        this.state = state;
        this.config = config;
    }

    /** A mesh {@link MeshLauncher#up} is starting: until {@link #launched}, its state is the one in memory. */
    static RunningMesh launching(Path stateDir, MeshState state, ModelConfig config) {
        RunningMesh m = new RunningMesh(stateDir, state, config);
        m.launching = true;
        return m;
    }

    /** Every service reports SERVING: from now on mesh.json (which the supervisor rewrites) is the state. */
    void launched() {
        launching = false;
    }

    /** Records that {@code moemesh down} (pid {@code pid}) waited for this launch to end: it stops the mesh now. */
    void stopAskedBy(long pid) {
        stopAskedBy = pid;
    }

    /**
     * The pid of a {@code moemesh down} that asked to stop this mesh while {@code up} was starting it (it waited for
     * the launch to end and stops the mesh now); empty when none did.
     */
    public Optional<Long> stopAskedBy() {
        return stopAskedBy == 0 ? Optional.empty() : Optional.of(stopAskedBy);
    }

    /**
     * The mesh recorded in {@code stateDir}, started by another process ({@code moemesh up}); closing it stops it.
     *
     * @throws IllegalArgumentException when no mesh is recorded there
     */
    public static RunningMesh attach(Path stateDir) {
        MeshState s = MeshState.read(stateDir).orElseThrow(() -> new IllegalArgumentException(
                "no mesh recorded in " + stateDir + " (no mesh.json)"));
        return new RunningMesh(stateDir, s, ModelConfigReader.read(Path.of(s.model())));
    }

    /**
     * The recorded state: mesh.json as it is now (the supervisor rewrites it when it restarts a service); while
     * {@code up} starts the mesh, what it started so far.
     */
    public MeshState state() {
        if (launching) {
            return state;
        }
        try {
            MeshState onDisk = MeshState.read(stateDir).orElse(null);
            if (onDisk != null) {
                state = onDisk;
            }
        } catch (IllegalArgumentException e) {
            // a half-written file cannot be read (writes are atomic renames); keep the last good one
        }
        return state;
    }

    public Path stateDir() {
        return stateDir;
    }

    public ModelConfig config() {
        return config;
    }

    /** HOST:PORT of the gateway's gRPC API. */
    public String gatewayEndpoint() {
        return state.gateway().grpcEndpoint();
    }

    /** HOST:PORT of the router-service's gRPC API (mutual TLS), unless the mesh runs without a router. */
    public Optional<String> routerEndpoint() {
        return Optional.ofNullable(state.router()).map(MeshState.Service::grpcEndpoint);
    }

    /**
     * The kvcache-service's gRPC endpoint the gateway uses (mutual TLS): {@code unix:///path} of its domain socket
     * under the domain-socket transport, else HOST:PORT; empty when the mesh runs without one.
     */
    public Optional<String> kvcacheEndpoint() {
        return Optional.ofNullable(state.kvcache()).map(KvCacheSettings::endpoint);
    }

    /** The gateway's OpenAI-compatible HTTP base: scheme, host and port (clients append /v1). */
    public String gatewayHttp() {
        return "http://127.0.0.1:" + state.gateway().httpPort();
    }

    /** The placement file's current content (tests rewrite it to switch epochs). */
    public Placement placement() {
        return PlacementFiles.read(Path.of(state.placementFile()));
    }

    public PlacementTable placementTable() {
        return PlacementTable.of(placement(), config.numLayers(), config.dispatchableExperts());
    }

    /** The mesh CA and the certificates {@code up} issued ({@code <state-dir>/tls/}). */
    public CertificateDirectory tls() {
        return CertificateDirectory.open(MeshLauncher.tlsDir(stateDir));
    }

    /**
     * Channel credentials for the mesh's internal gRPC ports as the launcher, {@link MeshLauncher#PLACER}: the
     * identity the expert-services accept LoadAssignment from (tests and tools that place experts use it).
     */
    public ChannelCredentials placerCredentials() {
        return credentials(MeshLauncher.PLACER);
    }

    /**
     * Channel credentials as one of the identities {@code up} issued a certificate for (expert-N, gateway, placer,
     * router, kvcache).
     */
    public ChannelCredentials credentials(String identity) {
        return tls().channelCredentials(identity);
    }

    /**
     * How to reach a service's gRPC port: the gateway's is its public API (plaintext; clients use API keys), every
     * other service's is internal (mutual TLS, as the placer).
     */
    public ChannelCredentials grpcCredentials(MeshState.Service s) {
        return s.name().equals(MeshLauncher.GATEWAY) ? InsecureChannelCredentials.create() : placerCredentials();
    }

    /** SIGKILL, as a crash would: no graceful shutdown, open streams are reset. Returns once it has exited. */
    public void kill(String name) {
        state().service(name).process().ifPresent(p -> {
            p.destroyForcibly();
            try {
                p.onExit().get(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } catch (ExecutionException | TimeoutException e) {
                throw new MeshException(name + " (pid " + p.pid() + ") did not exit after SIGKILL");
            }
        });
    }

    /**
     * Starts a service again with its recorded command and settings (same ports, instance id and placement file)
     * and waits until it reports SERVING.
     */
    public void restart(String name, Duration timeout) {
        restart(List.of(name), timeout);
    }

    /** Restarts several services at once (their startups overlap) and waits until all report SERVING. */
    public void restart(List<String> names, Duration timeout) {
        Instant deadline = Instant.now().plus(timeout);
        List<MeshState.Service> started = new ArrayList<>();
        for (String name : names) {
            MeshState.Service old = state().service(name);
            if (old.process().isPresent()) {
                throw new IllegalStateException(name + " is still running (pid " + old.pid() + ")");
            }
            MeshState.Service s = old.withProcess(ServiceProcess.start(old).toHandle());
            update(state().withService(s));
            started.add(s);
        }
        for (MeshState.Service s : started) {
            ServiceProcess.awaitServing(s, ProcessHandle.of(s.pid()).orElseThrow(() ->
                    new MeshException(s.name() + " exited at once; see " + s.logFile())), deadline, grpcCredentials(s));
        }
    }

    /**
     * Waits until the supervisor has started {@code name} again (a live process other than {@code previousPid} is
     * recorded) and it reports SERVING; returns its entry.
     */
    public MeshState.Service awaitRestarted(String name, long previousPid, Duration timeout) {
        Instant deadline = Instant.now().plus(timeout);
        while (true) {
            MeshState.Service s = state().service(name);
            Optional<ProcessHandle> p = s.pid() != previousPid ? s.process() : Optional.empty();
            if (p.isPresent()) {
                ServiceProcess.awaitServing(s, p.get(), deadline, grpcCredentials(s));
                return s;
            }
            if (Instant.now().isAfter(deadline)) {
                throw new MeshException(name + " was not restarted within " + timeout.toSeconds() + " s; see "
                        + stateDir.resolve("logs").resolve("supervisor.log"));
            }
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new MeshException("interrupted while waiting for " + name + " to be restarted");
            }
        }
    }

    /**
     * Starts {@code s} (its recorded command) for the launch and records it ({@code record}: the state with the
     * started service in it), both under this mesh's monitor, which the launch's stop takes for its snapshot: whatever was
     * started is in that snapshot and stopped with it. Why: a Ctrl-C's hook stops what the launch started so far
     * while the launch's own thread goes on; a supervisor started after that snapshot would restart each service
     * the hook stops, and those JVMs, unrecorded once the hook deleted mesh.json, kept their ports and the
     * kvcache-service's SSD lock.
     *
     * @return {@code s} as started
     * @throws MeshException when the launch is being stopped (nothing is started then)
     */
    synchronized MeshState.Service startDuringLaunch(MeshState.Service s,
                                                     BiFunction<MeshState, MeshState.Service, MeshState> record) {
        if (aborted) {
            throw new MeshException("moemesh up was interrupted while starting the mesh in " + stateDir
                    + ": stopping what it started, not starting " + s.name());
        }
        MeshState.Service started = s.withProcess(ServiceProcess.start(s).toHandle());
        update(record.apply(state, started));
        return started;
    }

    /** Records a change under the state lock (the supervisor may write mesh.json at the same time). */
    synchronized void update(MeshState s) {
        state = s;
        MeshState.update(stateDir, current -> Optional.of(s.supervisor() == null && current.isPresent()
                ? s.withSupervisor(current.get().supervisor()) : s));
    }

    void onClose(Runnable r) {
        onClose = r;
    }

    /**
     * Stops every recorded service that still runs and forgets the mesh. Never throws. While {@code up} starts it,
     * the services stopped are the ones this process started (and those its supervisor restarted, which only it
     * records in mesh.json: the launch lock keeps every other writer out), and the launch starts no more
     * ({@link #startDuringLaunch}).
     */
    void stopQuietly() {
        try {
            if (launching) {
                MeshState started;
                synchronized (this) {
                    aborted = true;
                    started = state;
                }
                MeshShutdown.stopSupervisor(started, STOP_GRACE);
                MeshShutdown.stopServices(started, STOP_GRACE);
                if (started.supervisor() != null) {
                    MeshState.read(stateDir).ifPresent(restarted -> MeshShutdown.stopServices(restarted, STOP_GRACE));
                }
            } else {
                MeshShutdown.stopSupervisor(state(), STOP_GRACE);
                MeshShutdown.stopServices(state(), STOP_GRACE);
            }
            MeshState.delete(stateDir);
        } catch (RuntimeException e) {
            System.err.println("moemesh: stopping the mesh in " + stateDir + " failed: " + e);
        }
    }

    /**
     * Stops this mesh when the JVM exits (Ctrl-C, SIGTERM) unless it is closed first, as {@code demo} does with the
     * mesh it starts: its services run in sessions of their own (setsid), so no signal to this process reaches them.
     * Returns this.
     */
    public RunningMesh stopOnJvmExit() {
        Thread hook = new Thread(this::stopQuietly, "moemesh-stop-on-exit");
        Runtime.getRuntime().addShutdownHook(hook);
        exitHook = hook;
        onClose(() -> MeshLauncher.removeHook(hook));
        return this;
    }

    /** The hook {@link #stopOnJvmExit} registered (tests run it as the JVM would); null without one. */
    Thread exitHook() {
        return exitHook;
    }

    /** Stops the mesh (SIGTERM, then SIGKILL after a grace period). */
    @Override
    public void close() {
        stopQuietly();
        onClose.run();
    }
}
