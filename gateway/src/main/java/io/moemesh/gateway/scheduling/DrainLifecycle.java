package io.moemesh.gateway.scheduling;

import io.moemesh.gateway.serving.AdmissionControl;
import io.moemesh.gateway.serving.DrainExpiredException;
import java.time.Duration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;

/**
 * Graceful shutdown (SIGTERM): first stop admitting (new requests get 503 / UNAVAILABLE), then let the
 * sequences in flight finish within the grace period; sequences still running or waiting when it ends are stopped
 * with a {@link DrainExpiredException}, so their clients get a clean, retryable end rather than a stream cut by
 * the servers' stop; only then do the gRPC and HTTP servers stop (this lifecycle's phase is higher, so Spring
 * stops it first).
 */
public final class DrainLifecycle implements SmartLifecycle {
    private static final Logger log = LoggerFactory.getLogger(DrainLifecycle.class);

    /** How long the stopped requests get to have their last message sent (one engine step is plenty). */
    static final Duration STOP_WAIT = Duration.ofSeconds(5);

    private final AdmissionControl admission;
    private final EngineLoop engine;
    private final Duration grace;
    private volatile boolean running;

    public DrainLifecycle(AdmissionControl admission, EngineLoop engine, Duration grace) {
        this.admission = admission;
        this.engine = engine;
        this.grace = grace;
    }

    @Override
    public void start() {
        running = true;
    }

    @Override
    public void stop() {
        admission.startDraining();
        long deadline = System.nanoTime() + grace.toNanos();
        log.info("draining: {} running, {} waiting", engine.running(), engine.waiting());
        while ((engine.running() > 0 || engine.waiting() > 0) && System.nanoTime() < deadline) {
            engine.awaitIdle(Duration.ofMillis(100));
        }
        if (engine.busy()) {
            log.warn("drain grace {} ended: stopping {} running and {} waiting requests", grace, engine.running(),
                    engine.waiting());
            engine.stopAll(new DrainExpiredException(grace));
            engine.awaitIdle(STOP_WAIT);
        }
        log.info("drained: {} running, {} waiting left", engine.running(), engine.waiting());
        running = false;
    }

    @Override
    public boolean isRunning() {
        return running;
    }

    @Override
    public int getPhase() {
        return Integer.MAX_VALUE - 1024;
    }
}
