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

/**
 * Probes the gateway's own public HTTP listener the way a client reaches it: a GET over a fresh TCP connection
 * with a short timeout. A listener whose poller thread died (seen after an OutOfMemoryError) still accepts TCP
 * connections but never answers, while everything else in the process looks fine; only a request through the
 * socket shows it. Any HTTP answer counts as alive (a 401 without an API key too): the probe tests the listener,
 * not the API. {@code failuresToFail} consecutive failures fail readiness and liveness; one answer clears them.
 */
public final class HttpSelfProbe {
    private final Supplier<Optional<URI>> target;
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
        if (failuresToFail < 1) {
            throw new IllegalArgumentException("failures to fail must be >= 1, got " + failuresToFail);
        }
        this.target = target;
        this.timeout = timeout;
        this.failuresToFail = failuresToFail;
    }

    /** Starts one probe, unless one is still in flight or the target is not known yet. Does not block. */
    public void probe() {
        Optional<URI> uri = target.get();
        if (uri.isEmpty() || !inFlight.compareAndSet(false, true)) {
            return;
        }
        // A client per probe: a pooled keep-alive connection would skip the accept path, and a listener that
        // no longer accepts must fail the probe. HTTP/1.1: no h2c upgrade attempt.
        HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(timeout).build();
        HttpRequest request = HttpRequest.newBuilder(uri.get()).timeout(timeout).GET()
                .header("User-Agent", "moemesh-gateway-self-probe").build();
        try {
            client.sendAsync(request, HttpResponse.BodyHandlers.discarding()).whenComplete((r, e) -> {
                client.shutdown();
                finished(r == null ? -1 : r.statusCode(), e);
            });
        } catch (RuntimeException e) {
            client.shutdown();
            finished(-1, e);
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
        target.get().ifPresent(u -> details.put("target", u.toString()));
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
