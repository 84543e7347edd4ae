package io.moemesh.gateway.config;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.function.Supplier;
import org.springframework.boot.context.properties.bind.DefaultValue;

/**
 * The gateway's link to the router-service, {@code moemesh.gateway.router.*} (environment variables
 * {@code MOEMESH_GATEWAY_ROUTER_ENDPOINT}, {@code MOEMESH_GATEWAY_ROUTER_WATCHER_ID},
 * {@code MOEMESH_GATEWAY_ROUTER_REPORT_SAMPLE_RATE}, ...). With an endpoint the gateway follows the router's
 * placements ({@code WatchPlacement}) and reports sampled routes ({@code ReportRoutes}) over mutual TLS with the
 * credentials of {@code moemesh.gateway.tls.*}; without one everything is as before (placement file or in-process).
 *
 * @param endpoint  the router's gRPC address, {@code host:port} ({@code [v6-address]:port} for IPv6); empty (the
 *                  default) = no router
 * @param watcherId this gateway's id at the router: its {@code WatchPlacementRequest.watcher_id} and its
 *                  {@code ReportRoutesRequest.source}. Must be unique per gateway (the router's
 *                  {@code Replan(wait_for_watchers)} waits for every id to report an epoch applied). Default: the
 *                  {@code HOSTNAME} environment variable (the pod name on Kubernetes), else the host name. At most
 *                  256 bytes in UTF-8, as the router takes it
 * @param report    route reports, {@code moemesh.gateway.router.report.*}
 * @param reconnect backoff of the watch and report streams after a failure, {@code moemesh.gateway.router.reconnect.*}
 */
public record RouterProperties(
        @DefaultValue("") String endpoint,
        String watcherId,
        @DefaultValue Report report,
        @DefaultValue Reconnect reconnect) {
    private static final String PREFIX = "moemesh.gateway.router.";
    static final int MAX_WATCHER_ID_BYTES = 256;

    public RouterProperties {
        endpoint = endpoint == null ? "" : endpoint.strip();
        if (!endpoint.isEmpty()) {
            checkEndpoint(endpoint, PREFIX + "endpoint");
        }
        report = report == null ? new Report(0.1, Duration.ofMillis(500), 65536) : report;
        reconnect = reconnect == null ? new Reconnect(Duration.ofMillis(200), Duration.ofSeconds(10)) : reconnect;
        if (watcherId == null || watcherId.isBlank()) {
            watcherId = defaultWatcherId(System.getenv(), RouterProperties::hostName);
        }
        watcherId = watcherId.strip();
        if (watcherId.isEmpty()) {
            throw new IllegalArgumentException(PREFIX + "watcher-id must not be empty (and unique per gateway): set it "
                    + "or HOSTNAME");
        }
        // The router refuses every WatchPlacement with a longer id (router.proto: at most 256 bytes): the gateway
        // would start and never get a placement.
        int bytes = watcherId.getBytes(StandardCharsets.UTF_8).length;
        if (bytes > MAX_WATCHER_ID_BYTES) {
            throw new IllegalArgumentException(PREFIX + "watcher-id must be at most " + MAX_WATCHER_ID_BYTES
                    + " bytes in UTF-8 (the router refuses longer ids), got " + bytes + " bytes");
        }
    }

    /** A router is configured. */
    public boolean enabled() {
        return !endpoint.isEmpty();
    }

    /** The default watcher id: {@code HOSTNAME} from {@code env}, else {@code hostName}, else "". */
    static String defaultWatcherId(Map<String, String> env, Supplier<String> hostName) {
        String h = env.get("HOSTNAME");
        if (h != null && !h.isBlank()) {
            return h.strip();
        }
        String name = hostName.get();
        return name == null ? "" : name.strip();
    }

    private static String hostName() {
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (UnknownHostException e) {
            return "";
        }
    }

    /** host:port (or [v6-address]:port), else IllegalArgumentException naming {@code property}. */
    static void checkEndpoint(String e, String property) {
        int colon = e.lastIndexOf(':');
        String host = colon < 0 ? "" : e.substring(0, colon);
        if (host.startsWith("[") != host.endsWith("]") || host.equals("[]")) {
            host = "";
        }
        int port = -1;
        if (colon >= 0) {
            try {
                port = Integer.parseInt(e.substring(colon + 1));
            } catch (NumberFormatException ignored) {
                port = -1;
            }
        }
        if (host.isEmpty() || port < 1 || port > 65535 || (!host.startsWith("[") && host.contains(":"))) {
            throw new IllegalArgumentException(property + " must be host:port with a port in [1, 65535] "
                    + "([address]:port for IPv6), got '" + e + "'");
        }
    }

    /**
     * @param sampleRate     fraction of routed tokens whose route is reported, in (0, 1] (per token: a hash of the
     *                       sequence and position decides, so a token is sampled or not whatever the batch)
     * @param flushInterval  how often a {@code ReportRoutesRequest} is sent, also without samples (it carries the
     *                       applied placement epoch, which the router needs at least once a second): in (0, 1s]
     * @param maxQueuedTokens sampled routes waiting for the next flush at most; more are dropped (counted), never
     *                       blocking the engine: >= 1
     */
    public record Report(
            @DefaultValue("0.1") double sampleRate,
            @DefaultValue("500ms") Duration flushInterval,
            @DefaultValue("65536") int maxQueuedTokens) {

        public Report {
            if (!(sampleRate > 0 && sampleRate <= 1)) {
                throw new IllegalArgumentException(PREFIX + "report.sample-rate must be in (0, 1], got " + sampleRate);
            }
            if (flushInterval == null || flushInterval.isNegative() || flushInterval.isZero()
                    || flushInterval.compareTo(Duration.ofSeconds(1)) > 0) {
                throw new IllegalArgumentException(PREFIX + "report.flush-interval must be in (0, 1s] (the router "
                        + "needs a report at least once a second), got " + flushInterval);
            }
            if (maxQueuedTokens < 1) {
                throw new IllegalArgumentException(PREFIX + "report.max-queued-tokens must be >= 1, got "
                        + maxQueuedTokens);
            }
        }
    }

    /**
     * Exponential backoff with jitter: the n-th retry in a row waits a random time in [d/2, d] with d =
     * min(maxBackoff, initialBackoff × 2^(n−1)).
     *
     * @param initialBackoff the first retry's bound: > 0
     * @param maxBackoff     the cap: >= initialBackoff
     */
    public record Reconnect(
            @DefaultValue("200ms") Duration initialBackoff,
            @DefaultValue("10s") Duration maxBackoff) {

        public Reconnect {
            if (initialBackoff == null || initialBackoff.isNegative() || initialBackoff.isZero()) {
                throw new IllegalArgumentException(PREFIX + "reconnect.initial-backoff must be a positive duration, got "
                        + initialBackoff);
            }
            if (maxBackoff == null || maxBackoff.compareTo(initialBackoff) < 0) {
                throw new IllegalArgumentException(PREFIX + "reconnect.max-backoff must not be shorter than "
                        + PREFIX + "reconnect.initial-backoff (" + initialBackoff + "), got " + maxBackoff);
            }
        }
    }
}
