package io.moemesh.cli.mesh;

import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** Starting one service JVM detached from the caller, waiting for its gRPC health, and stopping processes. */
public final class ServiceProcess {
    // A health check on an open channel is a few hundred µs of work: 100 ms polls cost nothing and report a
    // service that became SERVING at most 0.1 s late (cold start, docs/performance.md).
    private static final Duration POLL = Duration.ofMillis(100);
    // setsid puts the service in its own session: a Ctrl-C or hang-up of the terminal that ran `up` does not
    // reach it; only `down` stops it. Without setsid (not Linux) the process still outlives the `up` JVM.
    private static final Path SETSID = Path.of("/usr/bin/setsid");

    private ServiceProcess() {
    }

    /**
     * Starts the service of {@code s} (its command and environment) with stdout and stderr appended to its log
     * file; nothing is inherited from the caller's terminal, so the caller's pipes close when it exits.
     */
    public static Process start(MeshState.Service s) {
        Path log = Path.of(s.logFile());
        List<String> command = new ArrayList<>();
        if (Files.isExecutable(SETSID)) {
            command.add(SETSID.toString());
        }
        command.addAll(s.command());
        PrivateDirectories.create(log.getParent());
        try {
            Files.writeString(log, "=== moemesh: starting " + s.name() + " at " + Instant.now() + ": "
                    + String.join(" ", s.command()) + System.lineSeparator(), StandardCharsets.UTF_8,
                    StandardOpenOption.CREATE, StandardOpenOption.APPEND);
            ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
            replaceEnvironment(pb, s.environment());
            Process p = pb.start();
            p.getOutputStream().close();
            return p;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start " + s.name() + " (" + String.join(" ", s.command()) + ")", e);
        }
    }

    /**
     * The environment a service's process gets: {@code inherited} (this process's: PATH, JAVA_HOME, HOME, ...)
     * without the caller's secrets (API keys reach a service only through the 0600 files {@link MeshSecrets} writes)
     * and without any variable that configures a service ({@link MeshSecrets#configuresService}), then
     * {@code service}, the environment {@code up} built, which already carries the caller's settings it passes on.
     * Dropping only the inherited spellings of the service's own settings would not do: a setting {@code up}
     * removed on purpose (an exported {@code MOEMESH_EXPERT_GRPC_UNIX_SOCKET} under the TCP transport, which every
     * expert instance would try to bind) would still reach the service, and so would another spelling of one it
     * set, which Spring might read first.
     */
    static Map<String, String> environment(Map<String, String> inherited, Map<String, String> service) {
        Map<String, String> env = new LinkedHashMap<>();
        inherited.forEach((k, v) -> {
            if (!MeshSecrets.withheld(k) && !MeshSecrets.configuresService(k)) {
                env.put(k, v);
            }
        });
        env.putAll(service);
        return env;
    }

    /** Gives {@code pb}'s process {@link #environment} of the one it would inherit and {@code service}. */
    static void replaceEnvironment(ProcessBuilder pb, Map<String, String> service) {
        Map<String, String> env = environment(pb.environment(), service);
        pb.environment().clear();
        pb.environment().putAll(env);
    }

    /**
     * Waits until the service's gRPC health (service "") is SERVING.
     *
     * @param credentials how to reach its port: the mesh's client certificate for an internal (mutual TLS) port,
     *     insecure for the gateway's public one
     * @throws MeshException when the process exits first or the deadline passes, naming its log file
     */
    public static void awaitServing(MeshState.Service s, ProcessHandle process, Instant deadline,
                                    ChannelCredentials credentials) {
        ManagedChannel ch = Grpc.newChannelBuilderForAddress("127.0.0.1", s.grpcPort(), credentials).build();
        try {
            HealthGrpc.HealthBlockingStub health = HealthGrpc.newBlockingStub(ch);
            CompletableFuture<ProcessHandle> exit = process.onExit();
            while (true) {
                if (!process.isAlive()) {
                    throw failure(s, "exited during startup");
                }
                if (serving(health)) {
                    return;
                }
                if (Instant.now().isAfter(deadline)) {
                    throw failure(s, "did not report SERVING on gRPC health at " + s.grpcEndpoint() + " in time");
                }
                // A port that refused connections puts the channel in grpc's reconnect backoff (1 s growing by
                // 1.6x): after half a minute of JVM startup a check would wait 10 s or more after the service
                // listens. Every poll may connect at once instead.
                ch.resetConnectBackoff();
                // Waiting on the exit future doubles as the poll interval and notices a crash at once.
                try {
                    exit.get(POLL.toMillis(), TimeUnit.MILLISECONDS);
                } catch (TimeoutException | ExecutionException ignored) {
                    // still running (or its handle failed): poll health again
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw failure(s, "interrupted while waiting for it to start");
                }
            }
        } finally {
            ch.shutdownNow();
        }
    }

    /** One gRPC health check of service "" over plaintext (the gateway's public port), SERVING or not. */
    public static boolean serving(String endpointHost, int port) {
        return serving(endpointHost, port, InsecureChannelCredentials.create());
    }

    /**
     * One gRPC health check of service "", SERVING or not (unreachable, or a TLS handshake that fails, counts as
     * not).
     */
    public static boolean serving(String endpointHost, int port, ChannelCredentials credentials) {
        ManagedChannel ch = Grpc.newChannelBuilderForAddress(endpointHost, port, credentials).build();
        try {
            return serving(HealthGrpc.newBlockingStub(ch));
        } finally {
            ch.shutdownNow();
        }
    }

    private static boolean serving(HealthGrpc.HealthBlockingStub health) {
        try {
            return health.withDeadlineAfter(2, TimeUnit.SECONDS).check(HealthCheckRequest.newBuilder().setService("").build())
                    .getStatus() == ServingStatus.SERVING;
        } catch (StatusRuntimeException e) {
            return false;
        }
    }

    /**
     * Stops processes: SIGTERM to all (a graceful Spring shutdown), then SIGKILL to those still alive after
     * {@code grace}. Returns once all have exited.
     */
    public static void stop(List<ProcessHandle> processes, Duration grace) {
        processes.forEach(ProcessHandle::destroy);
        Instant deadline = Instant.now().plus(grace);
        for (ProcessHandle p : processes) {
            long left = Math.max(0, Duration.between(Instant.now(), deadline).toMillis());
            try {
                p.onExit().get(left, TimeUnit.MILLISECONDS);
            } catch (TimeoutException | ExecutionException e) {
                p.destroyForcibly();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                p.destroyForcibly();
            }
        }
        for (ProcessHandle p : processes) {
            try {
                p.onExit().get(10, TimeUnit.SECONDS);
            } catch (TimeoutException | ExecutionException | InterruptedException e) {
                // SIGKILL cannot be refused; only an unkillable (D-state) process gets here, nothing more to do
            }
        }
    }

    private static MeshException failure(MeshState.Service s, String what) {
        return new MeshException(s.name() + " " + what + "; see " + s.logFile() + tail(Path.of(s.logFile()), 8));
    }

    /** The last lines of a log, indented, so the cause is on screen without opening the file. */
    static String tail(Path log, int lines) {
        try {
            List<String> all = Files.readAllLines(log, StandardCharsets.UTF_8);
            List<String> last = all.subList(Math.max(0, all.size() - lines), all.size());
            return last.isEmpty() ? "" : System.lineSeparator() + "  | " + String.join(System.lineSeparator() + "  | ", last);
        } catch (IOException | UncheckedIOException e) {
            return "";
        }
    }
}
