package io.moemesh.cli.mesh;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.locks.ReentrantLock;
import java.util.regex.Pattern;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.DeserializationFeature;
import tools.jackson.databind.SerializationFeature;
import tools.jackson.databind.json.JsonMapper;

/**
 * What {@code moemesh up} started, as {@code <state>/mesh.json}: enough for {@code down} to stop exactly those
 * processes (pid plus start time, {@link ProcessStart}, so a recycled pid is never signalled) and for a restart of one
 * instance with the same port, instance id and settings. A file of an earlier build (without the fields added since)
 * or of a later one (with fields this build does not know) is read too: missing numbers are 0, missing objects null,
 * unknown fields ignored, so {@code down} after an upgrade still stops the mesh the earlier build started.
 *
 * @param model         absolute model directory
 * @param placementFile absolute path of the placement file the services read
 * @param gateway       null while the experts are still starting
 * @param epoch         the placement epoch {@code up} wrote to the placement file (1); the router, when there is
 *                      one, publishes later epochs to that file
 * @param supervisor    the process that restarts services that exit ({@link MeshSupervisor}); null when the mesh
 *                      runs without one ({@code --restart never}, tests)
 * @param router        the router-service; null when the mesh runs without one ({@code up --no-router}, tests that
 *                      switch placements themselves) and in mesh.json files written before there was one
 * @param kvcache       the kvcache-service; null when the mesh runs without one ({@code up --no-kvcache}, tests) and
 *                      in mesh.json files written before there was one
 */
public record MeshState(String model, int replicas, long epoch, String placementFile, List<Service> experts,
                        Service gateway, Service supervisor, Service router, Service kvcache) {
    static final String FILE_NAME = "mesh.json";
    private static final String LOCK_NAME = "mesh.lock";
    private static final JsonMapper JSON = JsonMapper.builder().enable(SerializationFeature.INDENT_OUTPUT)
            // Jackson 3 fails on a missing int by default: mesh.json files from before managementPort and restarts
            // could then not be read, and down refused to stop that mesh
            .disable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES).build();
    /** A pid in a mesh.json that cannot be parsed any more: the recovery hint of {@link #read} lists them. */
    private static final Pattern PID = Pattern.compile("\"pid\"\\s*:\\s*(\\d+)");
    /** FileChannel locks are per process: threads of one JVM take this first. */
    private static final ReentrantLock IN_PROCESS = new ReentrantLock();

    public MeshState {
        experts = List.copyOf(experts);
    }

    public MeshState(String model, int replicas, long epoch, String placementFile, List<Service> experts, Service gateway) {
        this(model, replicas, epoch, placementFile, experts, gateway, null, null);
    }

    /** Without a kvcache-service. */
    public MeshState(String model, int replicas, long epoch, String placementFile, List<Service> experts,
                     Service gateway, Service supervisor, Service router) {
        this(model, replicas, epoch, placementFile, experts, gateway, supervisor, router, null);
    }

    /**
     * One service process.
     *
     * @param startedAt      the process start instant as the OS reports it ({@link ProcessHandle.Info#startInstant}):
     *                       for people, and the process's identity where {@code bootId} is null
     * @param environment    the settings passed as environment variables, as a Kubernetes pod would get them
     *                       (never a secret: API keys go to a 0600 file, see {@link MeshSecrets})
     * @param managementPort the actuator's port (health, Prometheus); 0 when the service has none
     * @param restarts       how often the supervisor restarted it since {@code up}
     * @param bootId         the boot the process started in (Linux; {@link ProcessStart}); null elsewhere and in
     *                       mesh.json files written before it was recorded
     * @param startTicks     the process's start in clock ticks since that boot; 0 without a boot id
     */
    public record Service(String name, long pid, String startedAt, int grpcPort, int httpPort, String logFile,
                          List<String> command, Map<String, String> environment, int managementPort, int restarts,
                          String bootId, long startTicks) {
        public Service {
            command = List.copyOf(command);
            // sorted, so mesh.json reads the same on every run
            environment = Collections.unmodifiableMap(new TreeMap<>(environment == null ? Map.of() : environment));
        }

        public Service(String name, long pid, String startedAt, int grpcPort, int httpPort, String logFile,
                       List<String> command, Map<String, String> environment) {
            this(name, pid, startedAt, grpcPort, httpPort, logFile, command, environment, 0, 0);
        }

        /** An entry whose process start is known by its instant only (not started yet: pid 0). */
        public Service(String name, long pid, String startedAt, int grpcPort, int httpPort, String logFile,
                       List<String> command, Map<String, String> environment, int managementPort, int restarts) {
            this(name, pid, startedAt, grpcPort, httpPort, logFile, command, environment, managementPort, restarts,
                    null, 0);
        }

        public String grpcEndpoint() {
            return "127.0.0.1:" + grpcPort;
        }

        Service withProcess(ProcessHandle p) {
            return withProcess(p, ProcessStart.SYSTEM);
        }

        Service withProcess(ProcessHandle p, ProcessStart.Source starts) {
            ProcessStart s = starts.of(p);
            return new Service(name, p.pid(), s.instant(), grpcPort, httpPort, logFile, command, environment,
                    managementPort, restarts, s.bootId(), s.ticks());
        }

        /** The same service started by another command (the launcher's AOT cache: {@link AotCache}). */
        Service withCommand(List<String> newCommand) {
            return new Service(name, pid, startedAt, grpcPort, httpPort, logFile, newCommand, environment,
                    managementPort, restarts, bootId, startTicks);
        }

        /** The entry after the supervisor started it again as {@code p}. */
        Service restartedAs(ProcessHandle p) {
            Service s = withProcess(p);
            return new Service(name, s.pid(), s.startedAt(), grpcPort, httpPort, logFile, command, environment,
                    managementPort, restarts + 1, s.bootId(), s.startTicks());
        }

        /** The live process this entry describes, unless it exited (or its pid now belongs to another process). */
        public Optional<ProcessHandle> process() {
            return process(ProcessStart.SYSTEM);
        }

        /** {@link #process()} with the starts of live processes read by {@code starts}. */
        Optional<ProcessHandle> process(ProcessStart.Source starts) {
            ProcessStart recorded = new ProcessStart(startedAt, bootId, startTicks);
            return ProcessHandle.of(pid).filter(ProcessHandle::isAlive).filter(p -> starts.of(p).sameAs(recorded));
        }
    }

    /**
     * Every service, experts first, then the router and the kvcache-service (if any), the gateway last (the start
     * order; {@code down} stops the gateway first, then the kvcache-service, then the rest).
     */
    public List<Service> services() {
        List<Service> all = new ArrayList<>(experts);
        if (router != null) {
            all.add(router);
        }
        if (kvcache != null) {
            all.add(kvcache);
        }
        if (gateway != null) {
            all.add(gateway);
        }
        return all;
    }

    public Service service(String name) {
        return services().stream().filter(s -> s.name().equals(name)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("no service named " + name + " in this mesh"));
    }

    MeshState withService(Service s) {
        List<Service> ex = experts.stream().map(e -> e.name().equals(s.name()) ? s : e).toList();
        return new MeshState(model, replicas, epoch, placementFile, ex,
                gateway != null && gateway.name().equals(s.name()) ? s : gateway, supervisor,
                router != null && router.name().equals(s.name()) ? s : router,
                kvcache != null && kvcache.name().equals(s.name()) ? s : kvcache);
    }

    MeshState withExperts(List<Service> ex) {
        return new MeshState(model, replicas, epoch, placementFile, ex, gateway, supervisor, router, kvcache);
    }

    MeshState withGateway(Service g) {
        return new MeshState(model, replicas, epoch, placementFile, experts, g, supervisor, router, kvcache);
    }

    MeshState withSupervisor(Service s) {
        return new MeshState(model, replicas, epoch, placementFile, experts, gateway, s, router, kvcache);
    }

    MeshState withKvCache(Service k) {
        return new MeshState(model, replicas, epoch, placementFile, experts, gateway, supervisor, router, k);
    }

    MeshState withRouter(Service r) {
        return new MeshState(model, replicas, epoch, placementFile, experts, gateway, supervisor, r, kvcache);
    }

    /**
     * Read-modify-write of {@code <state>/mesh.json} under a lock file, so the supervisor's restarts and a test's or
     * a command's changes never overwrite each other. {@code change} gets the current state (empty when the mesh
     * is gone) and returns the new one, or empty to leave the file as it is.
     */
    static Optional<MeshState> update(Path stateDir, java.util.function.Function<Optional<MeshState>, Optional<MeshState>> change) {
        return update(stateDir, change, s -> s.write(stateDir));
    }

    /** {@link #update(Path, java.util.function.Function)} with the new state written by {@code write} (tests). */
    static Optional<MeshState> update(Path stateDir,
                                      java.util.function.Function<Optional<MeshState>, Optional<MeshState>> change,
                                      java.util.function.Consumer<MeshState> write) {
        IN_PROCESS.lock();
        try (FileChannel ch = FileChannel.open(lockFile(stateDir), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
             FileLock ignored = ch.lock()) {
            Optional<MeshState> next = change.apply(read(stateDir));
            next.ifPresent(write);
            return next;
        } catch (IOException e) {
            throw new UncheckedIOException(lockFile(stateDir) + ": cannot lock the mesh state (" + e.getMessage() + ")",
                    e);
        } finally {
            IN_PROCESS.unlock();
        }
    }

    private static Path lockFile(Path stateDir) {
        PrivateDirectories.create(stateDir);
        return stateDir.resolve(LOCK_NAME);
    }

    public static Path file(Path stateDir) {
        return stateDir.resolve(FILE_NAME);
    }

    /**
     * Written atomically: a concurrent {@code down} never reads half a file. A write that fails (a full disk) leaves
     * the previous file as it was and no temporary file behind.
     */
    void write(Path stateDir) {
        Path file = file(stateDir);
        PrivateDirectories.create(stateDir);
        Path tmp = null;
        try {
            tmp = Files.createTempFile(stateDir, FILE_NAME, ".tmp");
            Files.writeString(tmp, JSON.writeValueAsString(this) + "\n", StandardCharsets.UTF_8);
            try {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
            tmp = null;
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot write the mesh state (" + e.getMessage() + ")", e);
        } finally {
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // the write failed already; a leftover .tmp is never read (mesh.json is the only name read)
                }
            }
        }
    }

    public static Optional<MeshState> read(Path stateDir) {
        Path file = file(stateDir);
        if (!Files.isRegularFile(file)) {
            return Optional.empty();
        }
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read the mesh state (" + e.getMessage() + ")", e);
        }
        try {
            return Optional.of(JSON.readValue(text, MeshState.class));
        } catch (JacksonException e) {
            throw new IllegalArgumentException(file + ": not a mesh state file (" + e.getOriginalMessage() + "); "
                    + recovery(file, text), e);
        }
    }

    /**
     * What to do about a state file that cannot be read (truncated, edited): nothing can stop its processes by it, so
     * the operator is told which pids it names (a pid may have been reused since: check before signalling) and to
     * delete it, which unblocks {@code up} and {@code down}.
     */
    private static String recovery(Path file, String text) {
        List<String> pids = PID.matcher(text).results().map(m -> m.group(1)).distinct().toList();
        return (pids.isEmpty() ? "it names no pid that could be found"
                : "it names the pids " + String.join(", ", pids) + ": check each with ps -o pid,args -p PID and stop "
                        + "those of this mesh with kill PID")
                + "; then delete " + file;
    }

    /**
     * Refuses a state folder whose recorded mesh still runs (a service or its supervisor alive), or in which a launch
     * is starting one ({@link LaunchLock}): every tool that would overwrite the folder's data (a bench emptying
     * {@code kvcache/}) must not touch a live mesh's files.
     *
     * @throws IllegalArgumentException naming the folder and how to stop the mesh
     */
    public static void refuseIfRunning(Path stateDir) {
        LaunchLock.refuseIfHeld(stateDir);
        refuseIfRecordedRunning(stateDir);
    }

    /** {@link #refuseIfRunning} for the launch that holds the folder's {@link LaunchLock} itself. */
    static void refuseIfRecordedRunning(Path stateDir) {
        Optional<MeshState> old = read(stateDir);
        if (old.isPresent() && (old.get().services().stream().anyMatch(s -> s.process().isPresent())
                || (old.get().supervisor() != null && old.get().supervisor().process().isPresent()))) {
            throw new IllegalArgumentException("a mesh is already running in " + stateDir + " (see "
                    + file(stateDir) + "); stop it with: moemesh down " + StateDirOption.argument(stateDir));
        }
    }

    /**
     * Deletes {@code mesh.json} only: the state folder's other contents stay, above all {@code kvcache/} (the
     * kvcache-service's SSD tier, kept across {@code down} / {@code up}), the CA and the router's statistics.
     */
    static void delete(Path stateDir) {
        try {
            Files.deleteIfExists(file(stateDir));
        } catch (IOException e) {
            throw new UncheckedIOException(file(stateDir) + ": cannot delete the mesh state", e);
        }
    }
}
