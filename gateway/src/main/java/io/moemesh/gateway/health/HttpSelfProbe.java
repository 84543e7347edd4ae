package io.moemesh.gateway.health;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Probes the gateway's own public HTTP listener the way a client reaches it: a GET over a fresh TCP connection
 * with a short timeout. A listener whose poller thread died (seen after an OutOfMemoryError) still accepts TCP
 * connections but never answers, while everything else in the process looks fine; only a request through the
 * socket shows it. Any HTTP answer counts as alive (a 401 without an API key too): the probe tests the listener,
 * not the API. One answer clears the failures.
 *
 * <p>Readiness ({@link #readiness()}) fails after {@code failuresToFail} failures in a row, whatever their cause: a
 * listener that does not answer new clients should not be sent more. Liveness ({@link #liveness()}) restarts the
 * process, which ends every stream and call in flight on it, so it fails only on failures the listener's load does
 * not explain: a probe that timed out ({@link HttpTimeoutException}, the connect or the answer) while every worker was
 * busy or the listener held all the connections it accepts ({@link ListenerLoad#saturated()}) waited behind the
 * clients, and says nothing of a dead listener; such a failure does not count for liveness (nor does it clear the
 * count). Any other failure (a refused connection, no file descriptor left) counts whatever the load. A timeout is
 * explained only while the listener still completes work: a dead poller dispatches nothing, so no task completes,
 * while a busy listener finishes requests and closes idle connections at least every connection or keep-alive
 * timeout ({@link #progressWindow} is twice the longer; unbounded when idle connections are never closed). So a dead
 * poller still fails liveness after {@code failuresToFail} probes, even when the connections it left open fill the
 * listener, and so does a worker pool stuck for good; clients that merely keep the listener full do not restart the
 * gateway. (Dropping the probe from liveness would have left a dead listener unready for ever, never restarted.)
 */
public final class HttpSelfProbe {
    private static final Logger log = LoggerFactory.getLogger(HttpSelfProbe.class);
    /** A progress window no listener outlasts (its nanoseconds still fit a long). */
    static final Duration UNBOUNDED = Duration.ofNanos(Long.MAX_VALUE);
    private final Supplier<Optional<URI>> target;
    private final Supplier<HttpClient> clients;
    private final Duration timeout;
    private final int failuresToFail;
    private final Supplier<ListenerLoad> load;
    private final long progressWindowNanos;
    private final AtomicBoolean inFlight = new AtomicBoolean();
    private final AtomicLong failuresTotal = new AtomicLong();
    /** One field, so a check never pairs a new failure count with the previous probe's outcome. */
    private volatile Outcome outcome = new Outcome(0, 0, "no probe yet", null);
    // Written by one probe at a time (inFlight orders them): the listener's completed tasks and when they last moved.
    private long lastCompletedTasks = -1;
    private long lastProgressNanos = System.nanoTime();

    /**
     * The failures in a row, those of them the listener's load does not explain (liveness counts these), what the last
     * probe saw, and the load that explained its failure (null when it answered or nothing explained it).
     */
    private record Outcome(int consecutiveFailures, int unexplainedFailures, String last, String explainedBy) {
    }

    /**
     * A probe that knows nothing of the listener's load: every failure counts for liveness too.
     *
     * @param target where to send the GET; empty while it is not known yet (the listener has not started), and
     *               then no probe is made
     */
    public HttpSelfProbe(Supplier<Optional<URI>> target, Duration timeout, int failuresToFail) {
        this(target, timeout, failuresToFail, () -> ListenerLoad.UNKNOWN, Duration.ZERO);
    }

    /**
     * @param load           the listener's load, read when a probe ends (it may throw: then it is unknown)
     * @param progressWindow how long the listener may complete no task and its saturation still explain a failure
     */
    public HttpSelfProbe(Supplier<Optional<URI>> target, Duration timeout, int failuresToFail,
                         Supplier<ListenerLoad> load, Duration progressWindow) {
        // A client per probe: a pooled keep-alive connection would skip the accept path, and a listener that
        // no longer accepts must fail the probe. HTTP/1.1: no h2c upgrade attempt.
        this(target, timeout, failuresToFail,
                () -> HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(timeout).build(),
                load, progressWindow);
    }

    /**
     * @param clients makes each probe's client (one per probe); it may throw (a selector that cannot be opened when
     *                the process is out of file descriptors), which fails that probe like any other failure
     */
    public HttpSelfProbe(Supplier<Optional<URI>> target, Duration timeout, int failuresToFail,
                         Supplier<HttpClient> clients) {
        this(target, timeout, failuresToFail, clients, () -> ListenerLoad.UNKNOWN, Duration.ZERO);
    }

    private HttpSelfProbe(Supplier<Optional<URI>> target, Duration timeout, int failuresToFail,
                          Supplier<HttpClient> clients, Supplier<ListenerLoad> load, Duration progressWindow) {
        if (failuresToFail < 1) {
            throw new IllegalArgumentException("failures to fail must be >= 1, got " + failuresToFail);
        }
        this.clients = clients;
        this.target = target;
        this.timeout = timeout;
        this.failuresToFail = failuresToFail;
        this.load = load;
        this.progressWindowNanos = progressWindow.toNanos();
    }

    /**
     * Starts one probe, unless one is still in flight or the target is not known yet. Does not block and does not
     * throw: whatever goes wrong before the request is on its way (the target, the client, the request) is this
     * probe's failure, counted as one, and the next probe starts afresh.
     */
    public void probe() {
        if (!inFlight.compareAndSet(false, true)) {
            return;
        }
        HttpClient client = null;
        boolean handedOver = false;
        try {
            Optional<URI> uri = target.get();
            if (uri.isPresent()) {
                client = clients.get();
                HttpRequest request = HttpRequest.newBuilder(uri.get()).timeout(timeout).GET()
                        .header("User-Agent", "moemesh-gateway-self-probe").build();
                HttpClient sent = client;
                client.sendAsync(request, HttpResponse.BodyHandlers.discarding()).whenComplete((r, e) -> {
                    shutdown(sent);
                    finished(r == null ? -1 : r.statusCode(), e);
                });
                handedOver = true;
            }
        } catch (RuntimeException e) {
            if (outcome.consecutiveFailures() == 0) {
                // The listener was not even tried: say so once per streak (the outcome and the counter say the rest).
                log.warn("the HTTP self-probe could not be sent", e);
            }
            shutdown(client);
            finished(-1, e);
            handedOver = true;
        } finally {
            if (!handedOver) {
                // No target yet, or an Error on the way: no probe in flight, the next one may start.
                shutdown(client);
                inFlight.set(false);
            }
        }
    }

    /** Never throws: a client that cannot be shut down must not leave the probe in flight for good. */
    private static void shutdown(HttpClient client) {
        if (client != null) {
            try {
                client.shutdown();
            } catch (RuntimeException e) {
                log.debug("the HTTP self-probe's client did not shut down: {}", e.toString());
            }
        }
    }

    private void finished(int status, Throwable error) {
        // One probe at a time (inFlight): the only writer. The outcome is published before the total counts it,
        // so whoever sees the total sees the outcome too.
        ListenerLoad l = currentLoad();
        long now = System.nanoTime();
        if (l.completedTasks() >= 0 && l.completedTasks() != lastCompletedTasks) {
            lastCompletedTasks = l.completedTasks();
            lastProgressNanos = now;
        }
        Outcome o = outcome;
        if (error == null) {
            outcome = new Outcome(0, 0, "HTTP " + status, null);
        } else {
            Throwable cause = error.getCause() != null ? error.getCause() : error;
            String last = cause.getClass().getSimpleName() + (cause.getMessage() == null ? "" : ": " + cause.getMessage());
            // Unknown progress (no task count) cannot tell a stuck listener from a busy one: saturation explains.
            boolean working = l.completedTasks() < 0 || now - lastProgressNanos <= progressWindowNanos;
            // Only a wait explains itself by the load: a refused connection or a process out of file descriptors
            // is a failure of its own, whatever the load.
            boolean waited = cause instanceof HttpTimeoutException;
            outcome = waited && l.saturated() && working
                    ? new Outcome(o.consecutiveFailures() + 1, o.unexplainedFailures(), last, l.describe())
                    : new Outcome(o.consecutiveFailures() + 1, o.unexplainedFailures() + 1, last, null);
            failuresTotal.incrementAndGet();
        }
        inFlight.set(false);
    }

    private ListenerLoad currentLoad() {
        try {
            return load.get();
        } catch (RuntimeException e) {
            log.debug("the HTTP listener's load could not be read: {}", e.toString());
            return ListenerLoad.UNKNOWN;
        }
    }

    private Map<String, Object> details(Outcome o) {
        Map<String, Object> details = new LinkedHashMap<>();
        try {
            target.get().ifPresent(u -> details.put("target", u.toString()));
        } catch (RuntimeException e) {
            // Only a detail: the probes count the failure.
        }
        details.put("consecutiveFailures", o.consecutiveFailures());
        details.put("unexplainedFailures", o.unexplainedFailures());
        details.put("last", o.last());
        if (o.explainedBy() != null) {
            details.put("saturated", o.explainedBy());
        }
        return details;
    }

    /** Down after {@code failuresToFail} failed probes in a row, whatever their cause (a full listener too). */
    public Check readiness() {
        Outcome o = outcome;
        if (o.consecutiveFailures() >= failuresToFail) {
            return Check.down("the public HTTP listener did not answer " + o.consecutiveFailures()
                    + " probes in a row (last: " + o.last() + ")", details(o));
        }
        return Check.up("the public HTTP listener answers", details(o));
    }

    /**
     * Down after {@code failuresToFail} failed probes, with no answer in between, that the listener's load does not
     * explain: a listener that its clients keep full, and that still completes work, is not restarted.
     */
    public Check liveness() {
        Outcome o = outcome;
        if (o.unexplainedFailures() >= failuresToFail) {
            return Check.down("the public HTTP listener did not answer " + o.unexplainedFailures() + " probes that "
                    + "its load does not explain (last: " + o.last() + ")", details(o));
        }
        if (o.consecutiveFailures() >= failuresToFail) {
            return Check.up("the public HTTP listener does not answer, but its clients keep it full and it still "
                    + "completes work" + (o.explainedBy() == null ? "" : " (" + o.explainedBy() + ")"), details(o));
        }
        return Check.up("the public HTTP listener answers", details(o));
    }

    /**
     * How long a saturated listener may complete no task and still be taken as working: twice the longest time a
     * connection can stay idle before the listener closes it (a closing is a completed task, so a listener full of
     * idle keep-alive connections completes one at least that often). Tomcat's keep-alive timeout is its connection
     * timeout when not set. A negative or zero timeout (Tomcat: never close an idle connection) leaves a full listener
     * nothing to complete, so no window can tell it from a stuck one: the window is then unbounded, and saturation
     * alone never restarts the gateway (a dead listener that is not full still fails liveness).
     *
     * @param connectionTimeout server.tomcat.connection-timeout (60 s when not set)
     * @param keepAliveTimeout  server.tomcat.keep-alive-timeout, or null when not set
     */
    public static Duration progressWindow(Duration connectionTimeout, Duration keepAliveTimeout) {
        Duration keepAlive = keepAliveTimeout == null ? connectionTimeout : keepAliveTimeout;
        if (!connectionTimeout.isPositive() || !keepAlive.isPositive()) {
            return UNBOUNDED;
        }
        Duration longest = connectionTimeout.compareTo(keepAlive) >= 0 ? connectionTimeout : keepAlive;
        return longest.compareTo(UNBOUNDED.dividedBy(2)) >= 0 ? UNBOUNDED : longest.multipliedBy(2);
    }

    /** Failed probes since start (a counter for metrics). */
    public long failuresTotal() {
        return failuresTotal.get();
    }
}
