package io.moemesh.cli.mesh;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Stopping a recorded mesh's processes ({@code down}): once no launch is starting it, the supervisor first, then the
 * services in the order that keeps KV blocks.
 */
final class MeshShutdown {
    /** The gateway's {@code moemesh.gateway.shutdown-grace} unless its environment sets one. */
    static final Duration GATEWAY_SHUTDOWN_GRACE = Duration.ofSeconds(30);
    /** The gateway's drain, past its shutdown-grace: the requests it stopped get this to end (DrainLifecycle). */
    static final Duration GATEWAY_STOP_WAIT = Duration.ofSeconds(5);
    /** The gateway's {@code moemesh.gateway.kvcache.drain-timeout} unless its environment sets one. */
    static final Duration GATEWAY_WRITE_BACK_DRAIN = Duration.ofSeconds(10);
    /**
     * What follows the write-back drain, the same in the Helm chart's grace (moemesh.gateway.terminationGraceSeconds):
     * Tomcat's graceful shutdown (up to 5 s, spring.lifecycle.timeout-per-shutdown-phase), then the gRPC server's
     * graceful stop (5 s) and its forced stop (up to 5 s more, GrpcServerLifecycle.stop), which alone may take 15 s;
     * then the other beans' close and the JVM's exit: 25 s.
     */
    static final Duration GATEWAY_EXIT_MARGIN = Duration.ofSeconds(25);
    static final String GATEWAY_SHUTDOWN_GRACE_PROPERTY = "moemesh.gateway.shutdown-grace";
    static final String GATEWAY_WRITE_BACK_DRAIN_PROPERTY = "moemesh.gateway.kvcache.drain-timeout";
    /** The kvcache-service's {@code moemesh.kvcache.shutdown-grace} unless its environment sets one. */
    static final Duration KVCACHE_SHUTDOWN_GRACE = Duration.ofSeconds(10);
    static final String KVCACHE_SHUTDOWN_GRACE_PROPERTY = "moemesh.kvcache.shutdown-grace";
    /**
     * Calls still running after the shutdown-grace are cancelled and each of the service's two gRPC servers (TCP and
     * domain socket) waits up to 5 s more for them (GrpcServerLifecycle.stop).
     */
    static final Duration KVCACHE_FORCED_STOP_WAIT = Duration.ofSeconds(10);
    /** The service's wait for a compaction in progress to stop before it closes the tiers (KvCacheBackground). */
    static final Duration KVCACHE_COMPACTION_STOP_WAIT = Duration.ofSeconds(30);
    /**
     * The rate at which a full DRAM tier is assumed to be demoted to SSD and forced, bytes per second: 100 MB/s, what
     * a busy or throttled disk (a cloud volume's baseline) still writes; a laptop SSD writes its 256 MiB in well
     * under a second.
     */
    static final long KVCACHE_DEMOTION_BYTES_PER_SECOND = 100_000_000L;
    /** Spring's other beans' close and the JVM's exit after the tiers closed (its servers stopped before them). */
    static final Duration KVCACHE_EXIT_MARGIN = Duration.ofSeconds(15);
    /**
     * How long the supervisor's SIGTERM hook waits for its loop to end, a restart in progress recorded
     * ({@link MeshSupervisor#STOP_WAIT}), plus its JVM's exit: the least it gets before SIGKILL. A SIGKILL before
     * that would leave a service just started by it running unrecorded, holding its ports, which no {@code down}
     * stops.
     */
    static final Duration SUPERVISOR_MIN_GRACE = MeshSupervisor.STOP_WAIT.plus(Duration.ofSeconds(2));
    /** The most a supervisor gets: past its bounded wait a longer {@code --grace} would only delay {@code down}. */
    static final Duration SUPERVISOR_MAX_GRACE = Duration.ofSeconds(15);
    /** Spring Boot's simple duration form ({@code 30s}, {@code 500ms}, {@code 2m}; a bare number is milliseconds). */
    private static final Pattern SIMPLE_DURATION = Pattern.compile("([+-]?\\d+)([a-zA-Z]{0,2})");

    private MeshShutdown() {
    }

    /** {@link MeshLauncher#down(Path, Duration, Duration, PrintWriter)}: the launch's end awaited, the stages run. */
    static List<String> down(Path stateDir, Duration grace, Duration launchWait, PrintWriter log) {
        return down(stateDir, grace, launchWait, log, StateFiles.REAL);
    }

    /**
     * {@link #down(Path, Duration, Duration, PrintWriter)} with the lock probe and the delete of mesh.json done by
     * {@code files}. On a state directory that has become read-only (or fails otherwise) the mesh is stopped all the
     * same: a lock that cannot be probed is a warning (no launch is waited for), and so is a mesh.json that cannot be
     * deleted once every process it records is stopped (a later up overwrites it: none of them runs).
     */
    static List<String> down(Path stateDir, Duration grace, Duration launchWait, PrintWriter log, StateFiles files) {
        boolean launching;
        try {
            launching = LaunchLock.held(stateDir, files);
        } catch (UncheckedIOException e) {
            warn(log, e.getMessage() + "; stopping the mesh " + MeshState.FILE_NAME
                    + " records without waiting for a launch");
            launching = false;
        }
        if (launching) {
            log.printf("moemesh down: a moemesh up is starting a mesh in %s (it holds %s): waiting up to %d s for "
                    + "it to finish, then stopping it%n", stateDir, stateDir.resolve(LaunchLock.FILE),
                    launchWait.toSeconds());
            log.flush();
            if (!LaunchLock.awaitReleased(stateDir, launchWait)) {
                throw new IllegalArgumentException("a moemesh up is still starting a mesh in " + stateDir
                        + " (it holds " + stateDir.resolve(LaunchLock.FILE) + ") after " + launchWait.toSeconds()
                        + " s; nothing was stopped: run moemesh down " + StateDirOption.argument(stateDir)
                        + " again once that up has returned "
                        + "(a Ctrl-C in it stops what it started), or give --launch-wait more seconds");
            }
        }
        Optional<MeshState> state = MeshState.read(stateDir);
        if (state.isEmpty()) {
            return List.of();
        }
        List<String> report = new ArrayList<>();
        // The supervisor first, so it restarts nothing while the services stop; then the state it may have
        // changed (a restart in progress is recorded before it exits).
        if (stopSupervisor(state.get(), grace)) {
            report.add("stopped supervisor (pid " + state.get().supervisor().pid() + ")");
            state = MeshState.read(stateDir);
            if (state.isEmpty()) {
                return report;
            }
        }
        for (MeshState.Service s : state.get().services()) {
            report.add(s.process().isPresent() ? "stopped " + s.name() + " (pid " + s.pid() + ")"
                    : s.name() + " was not running");
        }
        stopServices(state.get(), grace);
        try {
            files.deleteIfExists(MeshState.file(stateDir));
        } catch (IOException e) {
            warn(log, "the mesh is stopped, but " + MeshState.file(stateDir) + " cannot be deleted (" + e.getMessage()
                    + "); delete it once its file system is writable (until then it names only stopped processes)");
        }
        // The short /tmp directory a deep state dir's sockets went to (SocketDirectory), once the services unlinked
        // them.
        SocketDirectory.removeEmptyFallback(stateDir).ifPresent(report::add);
        return report;
    }

    private static void warn(PrintWriter log, String what) {
        log.println("moemesh down: warning: " + what);
        log.flush();
    }

    /** Services stopped together: SIGTERM to all, SIGKILL to those still running after {@code grace}. */
    record Stage(List<MeshState.Service> services, Duration grace) {
        Stage {
            services = List.copyOf(services);
        }
    }

    /**
     * Stops the services of a mesh in the order that keeps KV blocks ({@link #stages}); each stage waits until its
     * processes exited (SIGKILL after the stage's grace).
     */
    static void stopServices(MeshState state, Duration grace) {
        for (Stage stage : stages(state, grace)) {
            ServiceProcess.stop(stage.services().stream().map(MeshState.Service::process).flatMap(Optional::stream)
                    .toList(), stage.grace());
        }
    }

    /**
     * The stages of {@link #stopServices}: the gateway first (it drains its in-flight requests, then its queued KV
     * write-backs to the kvcache-service; given at least {@link #gatewayStopGrace}), then the kvcache-service (it
     * finishes in-flight calls, demotes DRAM to SSD and forces its segments; given at least
     * {@link #kvcacheStopGrace}), then the others together (given {@code grace}). A SIGKILL before a stage's
     * service finished would lose KV blocks, so {@code grace} only ever lengthens those two stages.
     */
    static List<Stage> stages(MeshState state, Duration grace) {
        List<MeshState.Service> gateway = new ArrayList<>();
        List<MeshState.Service> kvcache = new ArrayList<>();
        List<MeshState.Service> rest = new ArrayList<>();
        for (MeshState.Service s : state.services()) {
            (s.name().equals(MeshLauncher.GATEWAY) ? gateway : s.name().equals(MeshLauncher.KVCACHE) ? kvcache : rest)
                    .add(s);
        }
        Duration gatewayGrace = gateway.stream().map(MeshShutdown::gatewayStopGrace).reduce(grace, MeshShutdown::max);
        Duration kvcacheGrace = kvcache.stream().map(MeshShutdown::kvcacheStopGrace).reduce(grace, MeshShutdown::max);
        return List.of(new Stage(gateway, gatewayGrace), new Stage(kvcache, kvcacheGrace), new Stage(rest, grace));
    }

    /**
     * How long the recorded gateway {@code s} may take from SIGTERM to exit: its shutdown-grace (in-flight requests
     * finish), the drain's stop wait, its write-back drain (queued KV blocks still sent to the kvcache-service), and
     * {@link #GATEWAY_EXIT_MARGIN} for its servers' stop and its exit; 70 s with the gateway's defaults. The durations
     * are the ones it was started with, read where Spring takes them from
     * ({@link SpringEnvironment#value(MeshState.Service, String)}): a {@code -D} option of its command ({@code up --jvm-option=-Dmoemesh.gateway.shutdown-grace=120s},
     * also as {@code -Dmoemesh.gateway.shutdownGrace}), else its environment ({@code MOEMESH_GATEWAY_SHUTDOWN_GRACE},
     * {@code MOEMESH_GATEWAY_KVCACHE_DRAIN_TIMEOUT}, which {@code up} passes on, under the name the gateway's relaxed
     * binding takes them from: also {@code MOEMESH_GATEWAY_SHUTDOWNGRACE}, which wins over the other), or the
     * gateway's defaults; a value the gateway could not bind stopped it at startup, so its default stands.
     */
    static Duration gatewayStopGrace(MeshState.Service s) {
        Duration shutdownGrace = setting(s, GATEWAY_SHUTDOWN_GRACE_PROPERTY).orElse(GATEWAY_SHUTDOWN_GRACE);
        Duration writeBackDrain = setting(s, GATEWAY_WRITE_BACK_DRAIN_PROPERTY).orElse(GATEWAY_WRITE_BACK_DRAIN);
        return shutdownGrace.plus(GATEWAY_STOP_WAIT).plus(writeBackDrain).plus(GATEWAY_EXIT_MARGIN);
    }

    /**
     * How long the recorded kvcache-service {@code s} may take from SIGTERM to exit: its shutdown-grace (in-flight
     * calls finish), the servers' forced stop, the wait for a compaction to stop, the demotion of a full DRAM tier to
     * SSD at {@link #KVCACHE_DEMOTION_BYTES_PER_SECOND} (rounded up to whole seconds), and a margin; 68 s with the
     * service's defaults and {@code up}'s 256 MiB tier. A SIGKILL before the demotion ends loses the acknowledged
     * blocks still in DRAM. The Helm chart derives a kvcache pod's terminationGracePeriodSeconds by the same rule
     * (moemesh.kvcache.terminationGraceSeconds: 108 s with its 4 GiB tier). The settings are read as {@link #gatewayStopGrace} reads the gateway's
     * ({@code -Dmoemesh.kvcache.shutdown-grace}, {@code -Dmoemesh.kvcache.dram-bytes} options of its command, else
     * {@code MOEMESH_KVCACHE_SHUTDOWN_GRACE}, {@code MOEMESH_KVCACHE_DRAM_BYTES} under any name Spring binds them
     * from); a DRAM size that is not a positive number stopped {@code up} before it started anything, so
     * {@code up}'s default stands for it.
     */
    static Duration kvcacheStopGrace(MeshState.Service s) {
        Duration shutdownGrace = setting(s, KVCACHE_SHUTDOWN_GRACE_PROPERTY).orElse(KVCACHE_SHUTDOWN_GRACE);
        long dram = SpringEnvironment.value(s, KvCacheSettings.DRAM_BYTES_PROPERTY).flatMap(v -> {
            try {
                return Optional.of(Long.parseLong(v.strip()));
            } catch (NumberFormatException e) {
                return Optional.empty();
            }
        }).filter(b -> b > 0).orElse(KvCacheSettings.DRAM_BYTES);
        Duration demotion = Duration.ofSeconds(Math.ceilDiv(dram, KVCACHE_DEMOTION_BYTES_PER_SECOND));
        return shutdownGrace.plus(KVCACHE_FORCED_STOP_WAIT).plus(KVCACHE_COMPACTION_STOP_WAIT).plus(demotion)
                .plus(KVCACHE_EXIT_MARGIN);
    }

    private static Optional<Duration> setting(MeshState.Service s, String property) {
        return SpringEnvironment.value(s, property).flatMap(MeshShutdown::springDuration)
                .filter(d -> !d.isNegative());
    }

    /** A duration as Spring Boot binds one without a unit annotation: {@code 30s}, {@code 1m}, {@code PT30S}, ms. */
    static Optional<Duration> springDuration(String value) {
        String v = value.strip();
        Matcher m = SIMPLE_DURATION.matcher(v);
        try {
            if (m.matches()) {
                long n = Long.parseLong(m.group(1));
                return switch (m.group(2).toLowerCase(Locale.ROOT)) {
                    case "", "ms" -> Optional.of(Duration.ofMillis(n));
                    case "ns" -> Optional.of(Duration.ofNanos(n));
                    case "us" -> Optional.of(Duration.ofNanos(Math.multiplyExact(n, 1000L)));
                    case "s" -> Optional.of(Duration.ofSeconds(n));
                    case "m" -> Optional.of(Duration.ofMinutes(n));
                    case "h" -> Optional.of(Duration.ofHours(n));
                    case "d" -> Optional.of(Duration.ofDays(n));
                    default -> Optional.empty();
                };
            }
            return Optional.of(Duration.parse(v));
        } catch (NumberFormatException | ArithmeticException | DateTimeParseException e) {
            return Optional.empty();
        }
    }

    private static Duration max(Duration a, Duration b) {
        return a.compareTo(b) >= 0 ? a : b;
    }

    /**
     * SIGTERM to the mesh's supervisor, if one runs, SIGKILL after {@link #supervisorGrace}; true when there was one.
     */
    static boolean stopSupervisor(MeshState state, Duration grace) {
        if (state.supervisor() == null) {
            return false;
        }
        Optional<ProcessHandle> p = state.supervisor().process();
        p.ifPresent(h -> ServiceProcess.stop(List.of(h), supervisorGrace(grace)));
        return p.isPresent();
    }

    /**
     * The supervisor's time between SIGTERM and SIGKILL: {@code grace}, but never less than
     * {@link #SUPERVISOR_MIN_GRACE} (also under {@code --grace 0}) nor more than {@link #SUPERVISOR_MAX_GRACE}.
     */
    static Duration supervisorGrace(Duration grace) {
        return max(SUPERVISOR_MIN_GRACE, grace.compareTo(SUPERVISOR_MAX_GRACE) < 0 ? grace : SUPERVISOR_MAX_GRACE);
    }
}
