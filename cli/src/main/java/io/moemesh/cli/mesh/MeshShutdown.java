package io.moemesh.cli.mesh;

import java.time.Duration;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Stopping a recorded mesh's processes: the supervisor first, then the services in the order that keeps KV blocks. */
final class MeshShutdown {
    /** The gateway's {@code moemesh.gateway.shutdown-grace} unless its environment sets one. */
    static final Duration GATEWAY_SHUTDOWN_GRACE = Duration.ofSeconds(30);
    /** The gateway's drain, past its shutdown-grace: the requests it stopped get this to end (DrainLifecycle). */
    static final Duration GATEWAY_STOP_WAIT = Duration.ofSeconds(5);
    /** The gateway's {@code moemesh.gateway.kvcache.drain-timeout} unless its environment sets one. */
    static final Duration GATEWAY_WRITE_BACK_DRAIN = Duration.ofSeconds(10);
    /** The servers' stop, the other beans' close, the JVM's exit (the Helm chart adds the same to its grace). */
    static final Duration GATEWAY_EXIT_MARGIN = Duration.ofSeconds(15);
    static final String GATEWAY_SHUTDOWN_GRACE_PROPERTY = "moemesh.gateway.shutdown-grace";
    static final String GATEWAY_WRITE_BACK_DRAIN_PROPERTY = "moemesh.gateway.kvcache.drain-timeout";
    /** Spring Boot's simple duration form ({@code 30s}, {@code 500ms}, {@code 2m}; a bare number is milliseconds). */
    private static final Pattern SIMPLE_DURATION = Pattern.compile("([+-]?\\d+)([a-zA-Z]{0,2})");

    private MeshShutdown() {
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
     * {@link KvCacheSettings#STOP_GRACE}), then the others together (given {@code grace}). A SIGKILL before a stage's
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
        Duration gatewayGrace = gateway.stream().map(s -> gatewayStopGrace(s.environment())).reduce(grace, MeshShutdown::max);
        return List.of(new Stage(gateway, gatewayGrace), new Stage(kvcache, max(grace, KvCacheSettings.STOP_GRACE)),
                new Stage(rest, grace));
    }

    /**
     * How long a gateway with this environment may take from SIGTERM to exit: its shutdown-grace (in-flight requests
     * finish), the drain's stop wait, its write-back drain (queued KV blocks still sent to the kvcache-service), and
     * a margin; 60 s with the gateway's defaults. The durations are the ones the caller's environment gave it
     * ({@code MOEMESH_GATEWAY_SHUTDOWN_GRACE}, {@code MOEMESH_GATEWAY_KVCACHE_DRAIN_TIMEOUT}, which {@code up} passes
     * on), read under the name the gateway's relaxed binding takes them from ({@link SpringEnvironment}: also
     * {@code MOEMESH_GATEWAY_SHUTDOWNGRACE}, which wins over the other), or the gateway's defaults; a value the
     * gateway could not bind stopped it at startup, so its default stands.
     */
    static Duration gatewayStopGrace(Map<String, String> environment) {
        Duration shutdownGrace = setting(environment, GATEWAY_SHUTDOWN_GRACE_PROPERTY).orElse(GATEWAY_SHUTDOWN_GRACE);
        Duration writeBackDrain = setting(environment, GATEWAY_WRITE_BACK_DRAIN_PROPERTY)
                .orElse(GATEWAY_WRITE_BACK_DRAIN);
        return shutdownGrace.plus(GATEWAY_STOP_WAIT).plus(writeBackDrain).plus(GATEWAY_EXIT_MARGIN);
    }

    private static Optional<Duration> setting(Map<String, String> environment, String property) {
        return SpringEnvironment.value(environment, property).flatMap(MeshShutdown::springDuration)
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

    /** SIGTERM to the mesh's supervisor, if one runs; true when there was one. */
    static boolean stopSupervisor(MeshState state, Duration grace) {
        if (state.supervisor() == null) {
            return false;
        }
        Optional<ProcessHandle> p = state.supervisor().process();
        p.ifPresent(h -> ServiceProcess.stop(List.of(h), grace.compareTo(Duration.ofSeconds(15)) < 0 ? grace
                : Duration.ofSeconds(15)));
        return p.isPresent();
    }
}
