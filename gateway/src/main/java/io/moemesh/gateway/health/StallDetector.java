package io.moemesh.gateway.health;

import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.function.LongSupplier;

/**
 * Tells a stuck engine loop from a busy or idle one: it is stalled when it has work (sequences running or
 * waiting) and has not finished a pass of its loop for longer than a limit. Past {@code stall} the gateway is
 * not ready (stop sending it requests); past the longer {@code wedged}, or once the engine thread is dead, it is
 * not live (restart it).
 */
public final class StallDetector {
    /** What the detector reads of the engine loop. */
    public interface Progress {
        /** Sequences are running or waiting. */
        boolean busy();

        /** The clock's value when the loop last finished a pass (a step or an idle wait). */
        long lastProgressNanos();

        /** The engine thread runs. */
        boolean alive();
    }

    private final Progress engine;
    private final LongSupplier nanoClock;
    private final Duration stall;
    private final Duration wedged;

    /**
     * @param nanoClock the clock {@link Progress#lastProgressNanos()} is read from ({@code System::nanoTime})
     */
    public StallDetector(Progress engine, LongSupplier nanoClock, Duration stall, Duration wedged) {
        if (stall.isNegative() || stall.isZero() || wedged.compareTo(stall) < 0) {
            throw new IllegalArgumentException("engine stall limits: need 0 < stall <= wedged, got stall " + stall
                    + " and wedged " + wedged);
        }
        this.engine = engine;
        this.nanoClock = nanoClock;
        this.stall = stall;
        this.wedged = wedged;
    }

    /** How long the engine has had work without finishing a pass; 0 while it is idle. */
    public long stalledNanos() {
        return engine.busy() ? Math.max(0, nanoClock.getAsLong() - engine.lastProgressNanos()) : 0;
    }

    /** Down while stalled longer than {@code stall}, or when the engine thread is dead. */
    public Check readiness() {
        return check(stall);
    }

    /** Down while stalled longer than {@code wedged}, or when the engine thread is dead. */
    public Check liveness() {
        return check(wedged);
    }

    private Check check(Duration limit) {
        if (!engine.alive()) {
            return Check.down("the engine thread is not running", Map.of());
        }
        long stalled = stalledNanos();
        Map<String, Object> details = new LinkedHashMap<>();
        details.put("busy", engine.busy());
        details.put("stalledSeconds", stalled / 1e9);
        details.put("limitSeconds", limit.toMillis() / 1e3);
        if (stalled > limit.toNanos()) {
            return Check.down(String.format(Locale.ROOT, "the engine has had work for %.1f s without finishing a step (limit %.1f s)",
                    stalled / 1e9, limit.toMillis() / 1e3), details);
        }
        return Check.up(engine.busy() ? "the engine is making progress" : "the engine is idle", details);
    }
}
