package io.moemesh.cli.mesh;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.service.grpc.InstanceEndpoint;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementFiles;
import io.moemesh.service.tls.CertificateDirectory;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * Brings a local mesh up and down: N expert-service JVMs, the router-service JVM (unless the spec leaves it out), the
 * kvcache-service JVM (when the spec asks for it, as {@code moemesh up} does) and one gateway JVM on loopback,
 * configured through environment variables exactly as a Kubernetes pod would be, sharing one placement file. The
 * caller's settings ({@link MeshSecrets#settings}) reach every service; what the mesh decides (ports, sockets, ids,
 * files, the KV block size) replaces them under every name Spring binds ({@link MeshEnvironments}).
 * {@code up} writes epoch 1 (the even deal) to it, which every service starts from; the router then owns placement: it
 * loads the same epoch 1 onto the instances (as the identity {@link #ROUTER}), reports SERVING once it is published, and writes every later epoch (a replan) to the same file. Service-to-service gRPC is
 * mutual TLS: {@code up} issues the mesh CA and one certificate per service (and one for itself, the {@link #PLACER}
 * identity allowed to LoadAssignment and to Replan) into {@code <state-dir>/tls/} and hands each service its files
 * as {@code MOEMESH_*_TLS_*} variables, as a mounted Secret would be on Kubernetes. The kvcache-service keeps its SSD
 * tier in {@code <state-dir>/kvcache/}, which neither {@code up} nor {@code down} deletes, so KV blocks stored before
 * a {@code down} are served after the next {@code up}; {@code down} stops the gateway first (it drains its queued
 * write-backs to the kvcache-service), then the kvcache-service (it demotes DRAM to SSD and forces its segments),
 * then the rest. With {@link MeshTransport#UNIX} ({@code up}'s default on Linux) each expert-service also listens on
 * a domain socket in the directory {@link SocketDirectory} picks, and the placement carries {@code unix:///...}
 * endpoints: the gateway's hops and the router's LoadAssignment calls use the sockets; everything else (readiness,
 * tools) keeps the TCP ports.
 */
public final class MeshLauncher {
    /** Flags every service JVM needs (Vector API kernels, native access) and the collector chosen for them. */
    // ExitOnOutOfMemoryError: a JVM that ran out of heap may have lost any thread (Tomcat's poller, the engine
    // loop) and keep answering health; exiting lets the supervisor (or Kubernetes) start a clean one.
    public static final List<String> SERVICE_JVM_FLAGS = List.of("--add-modules", "jdk.incubator.vector",
            "--enable-native-access=ALL-UNNAMED", "-XX:+UseParallelGC", "-XX:+ExitOnOutOfMemoryError");
    public static final long FIRST_EPOCH = 1;
    /** The launcher's identity: the expert-services accept LoadAssignment from it (their default placer). */
    public static final String PLACER = "placer";
    public static final String GATEWAY = "gateway";
    /** The router-service's service name and identity (expert-services accept LoadAssignment from it). */
    public static final String ROUTER = "router";
    /** -Xmx of the router: it holds the route window (~1.5 KiB a token for 32 layers) and no weights. */
    static final String ROUTER_HEAP = "256m";
    /** The kvcache-service's service name and mesh identity (its certificate's SAN is spiffe://moemesh/kvcache). */
    public static final String KVCACHE = "kvcache";

    private MeshLauncher() {
    }

    /**
     * Starts the mesh and returns once every service reports SERVING. On any failure it stops what it started
     * and throws. While one launch is starting a mesh in a state directory, another on the same directory fails
     * within 0.3 s with an IllegalArgumentException naming it ({@link LaunchLock#acquire}), starting nothing. With
     * {@code stopOnJvmExit} the services are also stopped when this JVM exits (tests, demo); without it they keep
     * running until {@link #down} ({@code moemesh up}). A {@code down} run meanwhile waits for the launch to end, then
     * stops the mesh: {@link RunningMesh#stopAskedBy} names it.
     */
    public static RunningMesh up(MeshSpec spec, PrintWriter log, boolean stopOnJvmExit) {
        return up(spec, log, stopOnJvmExit, System.getenv());
    }

    /**
     * @param callerEnv the environment whose service settings, API keys and {@code MOEMESH_AOT_CACHE} the services get
     *     (tests and {@code bench startup} pass their own)
     */
    public static RunningMesh up(MeshSpec spec, PrintWriter log, boolean stopOnJvmExit, Map<String, String> callerEnv) {
        ModelConfig config = ModelConfigReader.read(spec.model());
        // Held until mesh.json records every process started (or a failed launch stopped them): a second launch on
        // this folder fails (after LaunchLock.acquire's tries) instead of replacing the CA and the mesh.json of this
        // one (LaunchLock).
        try (LaunchLock ignored = LaunchLock.acquire(spec.stateDir())) {
            return launch(spec, log, stopOnJvmExit, callerEnv, config);
        }
    }

    private static RunningMesh launch(MeshSpec spec, PrintWriter log, boolean stopOnJvmExit,
                                      Map<String, String> callerEnv, ModelConfig config) {
        MeshState.refuseIfRecordedRunning(spec.stateDir());
        // what a mesh that is no longer running left behind
        MeshState.delete(spec.stateDir());
        // A fresh mesh starts at epoch 1: the router must not continue at the epoch of an earlier run. Its learned
        // route statistics (router/routes.json) stay.
        forgetRouterEpochs(spec.stateDir());
        String java = MeshHome.javaBinary();
        Path expertJar = spec.home().expertJar();
        Path gatewayJar = spec.home().gatewayJar();
        Path routerJar = spec.router() ? spec.home().routerJar() : null;
        Path kvcacheJar = spec.kvcache() ? spec.home().kvcacheJar() : null;
        Path placementFile = spec.stateDir().resolve("placement.json");
        // per service: gRPC, HTTP (the gateway's OpenAI API), management (actuator: health, Prometheus); the
        // experts', then the gateway's, then the router's, then the kvcache-service's
        int[] ports = freePorts(3 * (spec.experts() + 3));
        Map<String, String> settings = MeshSecrets.settings(callerEnv);
        List<String> identities = new ArrayList<>();
        for (int i = 0; i < spec.experts(); i++) {
            identities.add("expert-" + i);
        }
        identities.addAll(List.of(GATEWAY, PLACER));
        if (spec.router()) {
            identities.add(ROUTER);
        }
        if (spec.kvcache()) {
            identities.add(KVCACHE);
        }
        createStateDirectories(spec, identities);
        CertificateDirectory tls = CertificateDirectory.create(tlsDir(spec.stateDir()), identities);

        List<Instance> instances = new ArrayList<>();
        List<MeshState.Service> experts = new ArrayList<>();
        // With domain sockets the instances listen on <socket dir>/<id>.sock too (their TCP port stays, for the
        // readiness checks and tools) and the placement carries unix:///... endpoints, so the gateway's hops and the
        // router's LoadAssignment calls skip the TCP/IP stack.
        Path sockets = spec.transport() == MeshTransport.UNIX
                ? SocketDirectory.choose(spec.stateDir(), socketNames(spec, identities), log) : null;
        for (int i = 0; i < spec.experts(); i++) {
            String id = "expert-" + i;
            int grpc = ports[3 * i];
            int http = ports[3 * i + 1];
            Path socket = sockets == null ? null : sockets.resolve(id + ".sock");
            String endpoint = socket == null ? "127.0.0.1:" + grpc : InstanceEndpoint.unix(socket).target();
            instances.add(Instance.newBuilder().setId(id).setEndpoint(endpoint).setDeviceSlot(i).build());
            Map<String, String> env = MeshEnvironments.expert(settings, spec, id, i, grpc, socket, placementFile,
                    nativeCache(spec, id));
            MeshEnvironments.tls(env, "expert", tls, id);
            experts.add(service(spec, id, java, expertJar, grpc, http, ports[3 * i + 2], env));
        }
        Placement placement = EvenPlacement.build(FIRST_EPOCH, instances, config.numLayers(), config.numExperts(),
                config.hasSharedExpert(), spec.replicas());
        PlacementFiles.write(placementFile, placement);

        MeshState.Service router = null;
        if (spec.router()) {
            int base = 3 * (spec.experts() + 1);
            Map<String, String> renv = MeshEnvironments.router(settings, spec, ports[base], placementFile);
            MeshEnvironments.tls(renv, ROUTER, tls, ROUTER);
            router = service(spec, ROUTER, ROUTER_HEAP, java, routerJar, ports[base], ports[base + 1], ports[base + 2],
                    renv);
        }

        MeshState.Service kvcache = null;
        if (spec.kvcache()) {
            int base = 3 * (spec.experts() + 2);
            // under the domain-socket transport the gateway restores over <socket dir>/kvcache.sock
            Map<String, String> kenv = KvCacheSettings.environment(settings, spec, ports[base],
                    sockets == null ? null : sockets.resolve(KVCACHE + ".sock"));
            MeshEnvironments.tls(kenv, KVCACHE, tls, KVCACHE);
            kvcache = service(spec, KVCACHE, KvCacheSettings.heap(kenv, spec.jvmOptions()), java, kvcacheJar,
                    ports[base], ports[base + 1], ports[base + 2], kenv);
        }

        int gatewayGrpc = ports[3 * spec.experts()];
        // the gateway follows the router's WatchPlacement (and reports routes to it) and uses the kvcache-service
        Map<String, String> genv = MeshEnvironments.gateway(settings, spec,
                MeshSecrets.gatewayApiKeys(spec.stateDir(), callerEnv).orElse(null), gatewayGrpc, placementFile,
                nativeCache(spec, GATEWAY), router == null ? null : router.grpcEndpoint(),
                kvcache == null ? null : KvCacheSettings.endpoint(kvcache));
        MeshEnvironments.tls(genv, GATEWAY, tls, GATEWAY);
        MeshState.Service gateway = service(spec, GATEWAY, java, gatewayJar, gatewayGrpc, ports[3 * spec.experts() + 1],
                ports[3 * spec.experts() + 2], genv);

        // The services start from their jars' AOT caches (made once per build of a jar; AotCache says how).
        Optional<AotCache> aot = AotCache.of(spec.home(), callerEnv);
        if (aot.isPresent()) {
            List<MeshState.Service> all = new ArrayList<>(experts);
            all.add(gateway);
            Optional.ofNullable(router).ifPresent(all::add);
            Optional.ofNullable(kvcache).ifPresent(all::add);
            List<MeshState.Service> cached = aot.get().apply(all, spec.startTimeout(), log);
            experts = new ArrayList<>(cached.subList(0, experts.size()));
            gateway = cached.get(experts.size());
            int next = experts.size() + 1;
            router = router == null ? null : cached.get(next++);
            kvcache = kvcache == null ? null : cached.get(next);
        }

        // Until it is up, the mesh is what this launch started, kept in memory: a failure (or a Ctrl-C) stops
        // exactly those processes, whatever a mesh.json on disk lists.
        RunningMesh mesh = RunningMesh.launching(spec.stateDir(),
                new MeshState(spec.model().toString(), spec.replicas(), FIRST_EPOCH, placementFile.toString(), List.of(), null),
                config);
        Thread abort = new Thread(mesh::stopQuietly, "moemesh-up-abort");
        Runtime.getRuntime().addShutdownHook(abort);
        Instant t0 = Instant.now();
        Instant deadline = t0.plus(spec.startTimeout());
        try {
            log.printf("moemesh up: starting %d expert service(s)%s%s and the gateway for %s (logs in %s)%n",
                    spec.experts(), router != null ? ", the router" : "",
                    kvcache != null ? ", the kvcache-service (SSD tier in " + spec.kvcacheDir() + ")" : "",
                    spec.model().getFileName(),
                    spec.stateDir().resolve("logs"));
            log.flush();
            // All start at once: JVM startup is largely single-threaded, so the services' startups overlap on
            // the cores. The gateway connects to expert services lazily (as on Kubernetes, where pods start in
            // any order), and `up` returns only when every one of them is SERVING.
            // Each started and recorded under the mesh's monitor: a Ctrl-C's stop sees every one (startDuringLaunch).
            for (MeshState.Service s : experts) {
                mesh.startDuringLaunch(s, (st, e) -> st.withExperts(Stream.concat(st.experts().stream(), Stream.of(e))
                        .toList()));
            }
            if (router != null) {
                mesh.startDuringLaunch(router, MeshState::withRouter);
            }
            if (kvcache != null) {
                mesh.startDuringLaunch(kvcache, MeshState::withKvCache);
            }
            mesh.startDuringLaunch(gateway, MeshState::withGateway);
            for (MeshState.Service s : mesh.state().services()) {
                awaitServing(mesh, s, deadline, t0, log);
            }
            // Once every service serves, so it costs the start nothing.
            aot.ifPresent(a -> a.pruneStale(log, spec.stateDir()));
            if (spec.restart() == MeshSpec.RestartPolicy.ALWAYS) {
                startSupervisor(mesh, spec, java, log);
            }
        } catch (RuntimeException e) {
            mesh.stopQuietly();
            removeHook(abort);
            throw e;
        }
        mesh.launched();
        // The lock is still held, so a down that asked meanwhile is still waiting: say so, not just that it is up.
        LaunchLock.downWaiting(spec.stateDir()).ifPresent(pid -> {
            mesh.stopAskedBy(pid);
            log.printf("moemesh up: every service is SERVING, but moemesh down (pid %d) asked to stop this mesh while "
                    + "it was starting: it stops it now%n", pid);
            log.flush();
        });
        if (!stopOnJvmExit) {
            removeHook(abort);
        } else {
            mesh.onClose(() -> removeHook(abort));
        }
        return mesh;
    }

    /**
     * Starts the supervisor and records it, unless the launch is being stopped (a Ctrl-C's hook): then it throws
     * and starts nothing ({@link RunningMesh#startDuringLaunch}).
     */
    static void startSupervisor(RunningMesh mesh, MeshSpec spec, String java, PrintWriter log) {
        MeshState.Service sup = mesh.startDuringLaunch(supervisor(spec, java), MeshState::withSupervisor);
        log.printf("moemesh up: services that exit are restarted by the supervisor (pid %d, log %s)%n", sup.pid(),
                sup.logFile());
        log.flush();
    }

    /**
     * {@link #down(Path, Duration, Duration, PrintWriter)} waiting for no launch, saying nothing: the cleanup of
     * tests and shutdown hooks, which must not block for minutes (a hook blocking its JVM's exit is SIGKILLed with
     * nothing cleaned up). While a launch still starts a mesh in {@code stateDir} it throws, naming the lock file, and
     * stops nothing; only {@code moemesh down} waits for one ({@code --launch-wait}).
     */
    public static List<String> down(Path stateDir, Duration grace) {
        return down(stateDir, grace, Duration.ZERO, new PrintWriter(java.io.Writer.nullWriter()));
    }

    /**
     * Stops the mesh recorded in {@code stateDir}: SIGTERM, then SIGKILL after {@code grace}. Returns one line
     * per service saying what happened; an empty list when no mesh was recorded there. While a launch is starting a
     * mesh there ({@link LaunchLock}), it first waits up to {@code launchWait} for it to end (saying so on
     * {@code log}), then stops what it recorded: a cleanup run during an {@code up} leaves nothing running.
     *
     * @throws IllegalArgumentException naming the lock file when the launch still runs after {@code launchWait};
     *     nothing is stopped then
     */
    public static List<String> down(Path stateDir, Duration grace, Duration launchWait, PrintWriter log) {
        return MeshShutdown.down(stateDir, grace, launchWait, log);
    }

    /**
     * The supervisor process: this CLI's own class path and JDK, a small heap; its absolute {@code --state-dir} is how
     * the AOT cache pruning finds the mesh.json it restarts services from ({@link StaleAotCaches#inUse}).
     */
    static MeshState.Service supervisor(MeshSpec spec, String java) {
        List<String> cmd = new ArrayList<>();
        cmd.add(java);
        cmd.addAll(List.of("--add-modules", "jdk.incubator.vector", "-Xmx64m", "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1", "-cp", System.getProperty("java.class.path"), "io.moemesh.cli.Main",
                "supervise", "--state-dir", spec.stateDir().toAbsolutePath().toString()));
        Path logFile = spec.stateDir().resolve("logs").resolve("supervisor.log");
        return new MeshState.Service("supervisor", 0, "", 0, 0, logFile.toString(), cmd, Map.of());
    }

    /**
     * Deletes the router's epoch files of an earlier mesh ({@code router/placement.json}, {@code router/epochs.json};
     * see the router's EpochStore), so its first epoch is 1 like the placement file's; its route statistics stay.
     */
    static void forgetRouterEpochs(Path stateDir) {
        for (String f : List.of("placement.json", "epochs.json")) {
            Path file = routerDir(stateDir).resolve(f);
            try {
                Files.deleteIfExists(file);
            } catch (IOException e) {
                throw new UncheckedIOException(file + ": cannot delete the router's epoch file of an earlier mesh", e);
            }
        }
    }

    /**
     * Creates the state directory and the directories in it that the mesh writes to (by {@code up} itself or by the
     * services it starts: the CA and certificates, logs, native libraries, the router's snapshots, the kvcache-service's
     * SSD tier with every tenant's K/V) owner-only before anything is written, where missing ({@link PrivateDirectories}).
     */
    static void createStateDirectories(MeshSpec spec, List<String> identities) {
        Path state = spec.stateDir();
        PrivateDirectories.create(state);
        PrivateDirectories.create(tlsDir(state));
        PrivateDirectories.create(state.resolve("logs"));
        for (String id : identities) {
            if (!id.equals(PLACER)) {
                PrivateDirectories.create(nativeCache(spec, id));
            }
        }
        if (spec.router()) {
            PrivateDirectories.create(routerDir(state));
        }
        if (spec.kvcache()) {
            PrivateDirectories.create(spec.kvcacheDir());
        }
    }

    /** {@code <state-dir>/router/}: the router's snapshots (route statistics, epochs). */
    public static Path routerDir(Path stateDir) {
        return stateDir.resolve("router");
    }

    /** {@code <state-dir>/tls/}: the mesh CA and the certificates {@code up} issued. */
    public static Path tlsDir(Path stateDir) {
        return stateDir.resolve("tls");
    }

    private static void awaitServing(RunningMesh mesh, MeshState.Service s, Instant deadline, Instant t0,
                                     PrintWriter log) {
        ProcessHandle p = ProcessHandle.of(s.pid()).orElseThrow(() -> new MeshException(s.name()
                + " exited during startup; see " + s.logFile() + ServiceProcess.tail(Path.of(s.logFile()), 8)));
        ServiceProcess.awaitServing(s, p, deadline, mesh.grpcCredentials(s));
        log.printf("moemesh up: %s SERVING at %s (pid %d, %.1f s)%n", s.name(), s.grpcEndpoint(), s.pid(),
                Duration.between(t0, Instant.now()).toMillis() / 1000.0);
        log.flush();
    }

    private static MeshState.Service service(MeshSpec spec, String name, String java, Path jar, int grpcPort, int httpPort,
                                              int managementPort, Map<String, String> env) {
        return service(spec, name, spec.heap(), java, jar, grpcPort, httpPort, managementPort, env);
    }

    private static MeshState.Service service(MeshSpec spec, String name, String heap, String java, Path jar,
                                              int grpcPort, int httpPort, int managementPort, Map<String, String> env) {
        MeshEnvironments.http(env, httpPort, managementPort);
        List<String> cmd = new ArrayList<>();
        cmd.add(java);
        cmd.addAll(SERVICE_JVM_FLAGS);
        cmd.addAll(ServiceJvmOptions.startupFlags(name));
        cmd.add("-Xmx" + heap);
        cmd.add("-Dorg.bytedeco.javacpp.cachedir=" + nativeCache(spec, name));
        cmd.addAll(spec.jvmOptions());
        cmd.add("-jar");
        cmd.add(jar.toString());
        Path logFile = spec.stateDir().resolve("logs").resolve(name + ".log");
        return new MeshState.Service(name, 0, "", grpcPort, httpPort, logFile.toString(), cmd, env, managementPort, 0);
    }

    /** The names of the mesh's sockets ({@code <name>.sock}): the instances', and the kvcache-service's. */
    private static List<String> socketNames(MeshSpec spec, List<String> identities) {
        List<String> names = new ArrayList<>(identities.subList(0, spec.experts()));
        if (spec.kvcache()) {
            names.add(KVCACHE);
        }
        return names;
    }

    private static Path nativeCache(MeshSpec spec, String service) {
        // One folder per service: two JVMs unpacking the same native library into one folder can race.
        return spec.stateDir().resolve("native-cache").resolve(service);
    }

    /** Distinct free loopback ports: all sockets are held open together, so no port is handed out twice. */
    public static int[] freePorts(int n) {
        List<ServerSocket> sockets = new ArrayList<>();
        try {
            int[] ports = new int[n];
            for (int i = 0; i < n; i++) {
                ServerSocket s = new ServerSocket();
                sockets.add(s);
                s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
                ports[i] = s.getLocalPort();
            }
            return ports;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot find free loopback ports", e);
        } finally {
            for (ServerSocket s : sockets) {
                try {
                    s.close();
                } catch (IOException ignored) {
                    // closing a listening socket that never accepted cannot lose data
                }
            }
        }
    }

    static void removeHook(Thread hook) {
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException e) {
            // the JVM is already shutting down and the hook is running or ran
        }
    }
}
