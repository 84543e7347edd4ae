package io.moemesh.gateway.health;

import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The gateway's readiness outside the actuator: it is ready when the application accepts traffic and the
 * experts, the engine and the public HTTP listener all pass their readiness checks (the same components as the
 * actuator's readiness group). A thread of its own probes the HTTP listener every {@code probeInterval} and
 * publishes readiness every {@code publishInterval} (and at once when the application's readiness changes):
 * the gateway mirrors it into its gRPC health service, so gRPC clients and the launcher see the same truth as
 * Kubernetes' readiness probe. A plain thread, not a scheduled executor: an executor would swallow an Error
 * thrown by a task and silently stop the schedule.
 */
public final class HealthMonitor implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(HealthMonitor.class);

    private final ExpertReadiness experts;
    private final StallDetector engine;
    private final HttpSelfProbe http;
    private final Duration probeInterval;
    private final Duration publishInterval;
    private final Consumer<Boolean> publish;
    private final Semaphore wake = new Semaphore(0);
    private final Thread thread;
    private volatile boolean running;
    private volatile boolean acceptingTraffic;
    private Boolean published; // guarded by this

    /**
     * @param publish receives readiness on every evaluation whose result differs from the last one published
     */
    public HealthMonitor(ExpertReadiness experts, StallDetector engine, HttpSelfProbe http, Duration probeInterval,
                         Duration publishInterval, Consumer<Boolean> publish) {
        this.experts = experts;
        this.engine = engine;
        this.http = http;
        this.probeInterval = probeInterval;
        this.publishInterval = publishInterval;
        this.publish = publish;
        this.thread = Thread.ofPlatform().name("moemesh-health").daemon().unstarted(this::loop);
    }

    /** The application's own readiness (Spring's ReadinessState): false before startup ends and while stopping. */
    public void acceptingTraffic(boolean accepting) {
        acceptingTraffic = accepting;
        evaluate();
    }

    /** Ready now: accepting traffic and every readiness check up. */
    public boolean ready() {
        return acceptingTraffic && experts.check().up() && engine.readiness().up() && http.readiness().up();
    }

    /** The last readiness published (false before the first). */
    public synchronized boolean published() {
        return Objects.requireNonNullElse(published, false);
    }

    public void start() {
        running = true;
        evaluate();
        thread.start();
    }

    /** Evaluates readiness now and publishes it if it changed. */
    public void evaluate() {
        boolean ready = running && ready();
        synchronized (this) {
            if (published != null && published == ready) {
                return;
            }
            published = ready;
            log.info("gateway readiness: {}", ready ? "ready" : notReadyBecause());
            publish.accept(ready);
        }
    }

    private String notReadyBecause() {
        if (!running) {
            return "not ready (stopping)";
        }
        if (!acceptingTraffic) {
            return "not ready (the application does not accept traffic)";
        }
        for (Check c : new Check[] {experts.check(), engine.readiness(), http.readiness()}) {
            if (!c.up()) {
                return "not ready (" + c.reason() + ")";
            }
        }
        return "not ready";
    }

    private void loop() {
        long nextProbe = System.nanoTime();
        while (running) {
            long now = System.nanoTime();
            if (now - nextProbe >= 0) {
                nextProbe = now + probeInterval.toNanos();
                try {
                    http.probe();
                } catch (RuntimeException e) {
                    // The probe counts its own failures; this guards the thread: ended, readiness would freeze.
                    log.error("HTTP self-probe failed to run", e);
                }
            }
            try {
                evaluate();
            } catch (RuntimeException e) {
                // A bug in a check must not end the monitor (readiness would freeze): log, try again next time.
                log.error("health evaluation failed", e);
            }
            long sleep = Math.min(publishInterval.toNanos(), Math.max(0, nextProbe - System.nanoTime()));
            try {
                wake.tryAcquire(sleep, TimeUnit.NANOSECONDS);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    /** Stops the thread and publishes not-ready: a stopping gateway must not look ready. */
    @Override
    public void close() {
        running = false;
        wake.release();
        try {
            thread.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        evaluate();
    }
}
