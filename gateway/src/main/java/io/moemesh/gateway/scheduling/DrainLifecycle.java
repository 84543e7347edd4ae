package io.moemesh.gateway.scheduling;

import io.moemesh.gateway.serving.AdmissionControl;
import io.moemesh.gateway.serving.DrainExpiredException;
import java.time.Duration;
import java.util.concurrent.locks.LockSupport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;

/**
 * Graceful shutdown (SIGTERM): first stop admitting (new requests get 503 / UNAVAILABLE) and tell the public gRPC
 * server's client connections to go away (GOAWAY, see {@link #DrainLifecycle(AdmissionControl, EngineLoop, Duration,
 * Runnable)}), then let the requests in flight finish within the grace period: those admitted and not yet submitted
 * to the engine ({@link AdmissionControl#reserved()}) and the engine's sequences ({@link EngineLoop#inFlight()}).
 * Sequences still running or waiting when it ends are stopped with a {@link DrainExpiredException} (so are those
 * submitted after that), so their clients get a clean, retryable end rather than a stream cut by the servers' stop;
 * only then do the gRPC and HTTP servers stop (see {@link #PHASE}).
 */
public final class DrainLifecycle implements SmartLifecycle {
    private static final Logger log = LoggerFactory.getLogger(DrainLifecycle.class);

    /** How long the stopped requests get to have their last message sent (one engine step is plenty). */
    static final Duration STOP_WAIT = Duration.ofSeconds(5);
    /** How often a drain looks again while only admitted, not yet submitted requests are left (they are quick). */
    private static final long RESERVED_POLL_NANOS = Duration.ofMillis(10).toNanos();
    private static final Duration ENGINE_POLL = Duration.ofMillis(100);
    /**
     * A phase of its own, above Spring Boot's web server graceful shutdown (Tomcat stops accepting and waits for its
     * requests: {@code WebServerGracefulShutdownLifecycle}, MAX - 1024) and the web and gRPC servers' stop (MAX - 2048),
     * below the health monitor's (MAX - 512, which turns NOT_SERVING first). Spring stops phases from the highest down,
     * each done before the next, so the drain ends before Tomcat's graceful shutdown whatever the beans' order; in a
     * phase they shared, only the order the beans were registered in would decide.
     */
    static final int PHASE = Integer.MAX_VALUE - 768;

    private final AdmissionControl admission;
    private final EngineLoop engine;
    private final Duration grace;
    private final Runnable goAway;
    private volatile boolean running;

    /** A drain with no connections to send away (tests of the drain alone). */
    public DrainLifecycle(AdmissionControl admission, EngineLoop engine, Duration grace) {
        this(admission, engine, grace, () -> { });
    }

    /**
     * @param goAway run when the drain starts, right after admission closes: the public gRPC server's GOAWAY
     *               ({@code GrpcServerLifecycle.sendGoAway}), whose calls in flight go on. Without it a client whose
     *               connection is open (a Kubernetes Service picks a pod per connection, so a long-lived gRPC channel
     *               stays on this pod) would have every call refused for the whole grace instead of reconnecting to a
     *               pod that serves; the preStop wait only keeps new connections away (docs/kubernetes.md,
     *               "Rolling upgrades without dropping requests")
     */
    public DrainLifecycle(AdmissionControl admission, EngineLoop engine, Duration grace, Runnable goAway) {
        this.admission = admission;
        this.engine = engine;
        this.grace = grace;
        this.goAway = goAway;
    }

    @Override
    public void start() {
        running = true;
    }

    @Override
    public void stop() {
        admission.startDraining();
        goAway.run();
        log.info("draining: {} requests in flight", inFlight());
        if (!awaitNoneInFlight(System.nanoTime() + grace.toNanos())) {
            log.warn("drain grace {} ended: stopping {} requests in flight", grace, inFlight());
            engine.stopAll(new DrainExpiredException(grace));
            awaitNoneInFlight(System.nanoTime() + STOP_WAIT.toNanos());
        }
        log.info("drained: {} requests in flight left", inFlight());
        running = false;
    }

    /**
     * Requests admitted and not ended. Reservations are read first: a request is counted by the engine before its
     * reservation is released, and none is reserved once draining started, so none is missed between the two reads.
     */
    private int inFlight() {
        int admitted = admission.reserved();
        return admitted + engine.inFlight();
    }

    /** Waits until no request is in flight or {@code deadline} (nano time) passes; true when none is. */
    private boolean awaitNoneInFlight(long deadline) {
        while (inFlight() > 0) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                return false;
            }
            if (engine.busy()) {
                engine.awaitIdle(Duration.ofNanos(Math.min(left, ENGINE_POLL.toNanos())));
            } else {
                // Only admitted requests on their way to the engine: a moment.
                LockSupport.parkNanos(Math.min(left, RESERVED_POLL_NANOS));
            }
        }
        return true;
    }

    @Override
    public boolean isRunning() {
        return running;
    }

    @Override
    public int getPhase() {
        return PHASE;
    }
}
