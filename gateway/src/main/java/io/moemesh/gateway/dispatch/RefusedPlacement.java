package io.moemesh.gateway.dispatch;

import io.moemesh.gateway.routing.Backoff;
import io.moemesh.service.placement.PlacementTable;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The latest placement whose instances could not be connected, why, and when to try it again. Opening a client may
 * fail for a moment (file descriptors or threads short) or for good (a {@code unix:///} endpoint where the transport
 * is unavailable); either way the same placement is tried again after a backoff ({@link #FIRST_RETRY} doubling to
 * {@link #MAX_RETRY}, jittered), not at every step boundary (the engine offers it before each step: retrying each
 * time would only repeat the failure), and a different placement is tried at once. Engine thread only, except
 * {@link #reason()}.
 */
final class RefusedPlacement {
    private static final Logger log = LoggerFactory.getLogger(RefusedPlacement.class);
    static final Duration FIRST_RETRY = Duration.ofSeconds(1);
    static final Duration MAX_RETRY = Duration.ofSeconds(30);
    private final LongSupplier nanoTime;
    private final Backoff backoff = new Backoff(FIRST_RETRY, MAX_RETRY, () -> ThreadLocalRandom.current().nextDouble());
    private PlacementTable table;
    private long retryAt;
    /** Why {@link #table} was refused, for readiness (any thread); null once a later placement is in use. */
    private volatile String reason;

    RefusedPlacement(LongSupplier nanoTime) {
        this.nanoTime = nanoTime;
    }

    /** Whether {@code next} is the placement refused last and its retry is not due yet. */
    boolean holdsBack(PlacementTable next) {
        return same(table, next) && nanoTime.getAsLong() - retryAt < 0;
    }

    /**
     * Records (and logs: the first failure of a placement as an error, its retries' at debug) that {@code next} could
     * not be connected.
     *
     * @param serving the epoch that serves meanwhile (0: none)
     */
    void refused(PlacementTable next, RuntimeException e, long serving) {
        if (!same(table, next)) {
            backoff.reset();
            table = next;
        }
        Duration wait = backoff.next();
        retryAt = nanoTime.getAsLong() + wait.toNanos();
        reason = "placement epoch " + next.epoch() + " could not be applied: " + e;
        if (backoff.failures() == 1) {
            log.error("placement epoch {} not applied: an instance could not be connected ({}); not ready, tried again "
                    + "in {} ms; {}", next.epoch(), e.toString(), wait.toMillis(), serving == 0
                    ? "no placement serves meanwhile" : "epoch " + serving + " serves meanwhile", e);
        } else {
            log.debug("placement epoch {} still not applied ({} attempts): {}; next try in {} ms", next.epoch(),
                    backoff.failures(), e.toString(), wait.toMillis());
        }
    }

    /** {@code applied} is in use: nothing is refused any more. */
    void clear(PlacementTable applied) {
        if (same(table, applied)) {
            log.info("placement epoch {} connected after {} failed attempts", applied.epoch(), backoff.failures());
        }
        table = null;
        reason = null;
        backoff.reset();
    }

    Optional<String> reason() {
        return Optional.ofNullable(reason);
    }

    static boolean same(PlacementTable a, PlacementTable b) {
        return a != null && a.epoch() == b.epoch() && a.instances().equals(b.instances());
    }
}
