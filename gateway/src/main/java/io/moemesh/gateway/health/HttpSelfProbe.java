package io.moemesh.gateway.health;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
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
 * not the API. {@code failuresToFail} consecutive failures fail readiness and liveness; one answer clears them.
 */
public final class HttpSelfProbe {
    private static final Logger log = LoggerFactory.getLogger(HttpSelfProbe.class);
    private final Supplier<Optional<URI>> target;
    private final Supplier<HttpClient> clients;
    private final Duration timeout;
    private final int failuresToFail;
    private final AtomicBoolean inFlight = new AtomicBoolean();
    private final AtomicLong failuresTotal = new AtomicLong();
    /** One field, so a check never pairs a new failure count with the previous probe's outcome. */
    private volatile Outcome outcome = new Outcome(0, "no probe yet");

    /** The failures in a row and what the last probe saw. */
    private record Outcome(int consecutiveFailures, String last) {
    }

    /**
     * @param target where to send the GET; empty while it is not known yet (the listener has not started), and
     *               then no probe is made
     */
    public HttpSelfProbe(Supplier<Optional<URI>> target, Duration timeout, int failuresToFail) {
        // A client per probe: a pooled keep-alive connection would skip the accept path, and a listener that
        // no longer accepts must fail the probe. HTTP/1.1: no h2c upgrade attempt.
        this(target, timeout, failuresToFail,
                () -> HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(timeout).build());
    }

    /**
     * @param clients makes each probe's client (one per probe); it may throw (a selector that cannot be opened when
     *                the process is out of file descriptors), which fails that probe like any other failure
     */
    public HttpSelfProbe(Supplier<Optional<URI>> target, Duration timeout, int failuresToFail,
                         Supplier<HttpClient> clients) {
        if (failuresToFail < 1) {
            throw new IllegalArgumentException("failures to fail must be >= 1, got " + failuresToFail);
        }
        this.clients = clients;
        this.target = target;
        this.timeout = timeout;
        this.failuresToFail = failuresToFail;
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
        if (error == null) {
            outcome = new Outcome(0, "HTTP " + status);
        } else {
            Throwable cause = error.getCause() != null ? error.getCause() : error;
            outcome = new Outcome(outcome.consecutiveFailures() + 1,
                    cause.getClass().getSimpleName() + (cause.getMessage() == null ? "" : ": " + cause.getMessage()));
            failuresTotal.incrementAndGet();
        }
        inFlight.set(false);
    }

    public Check check() {
        Outcome o = outcome;
        Map<String, Object> details = new LinkedHashMap<>();
        try {
            target.get().ifPresent(u -> details.put("target", u.toString()));
        } catch (RuntimeException e) {
            // Only a detail: the probes count the failure.
        }
        details.put("consecutiveFailures", o.consecutiveFailures());
        details.put("last", o.last());
        if (o.consecutiveFailures() >= failuresToFail) {
            return Check.down("the public HTTP listener did not answer " + o.consecutiveFailures()
                    + " probes in a row (last: " + o.last() + ")", details);
        }
        return Check.up("the public HTTP listener answers", details);
    }

    /** Failed probes since start (a counter for metrics). */
    public long failuresTotal() {
        return failuresTotal.get();
    }
}
