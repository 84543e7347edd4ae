package io.moemesh.router.coordination;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BiConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What {@link PlacementCoordinator} must know before it places: the highest epoch seen elsewhere, and the holds that
 * keep it from placing. Epoch numbers must only grow across routers too: a router whose state folder was lost (a
 * recreated pod's emptyDir) knows nothing of the epochs the gateways hold, and a gateway ignores a placement whose
 * epoch is not newer than its own, so every epoch seen elsewhere raises the floor the next number goes above: the
 * placement ConfigMap's (read at start, and whenever a write finds a newer one), a gateway's WatchPlacement
 * known_epoch and ReportRoutes placement_epoch, and what instances say they hold (in {@link EpochAttempts}). A hold
 * ({@link #hold}) keeps the coordinator from starting any switch or replan: until the ConfigMap's epoch is read,
 * and while another router holds the lease.
 *
 * <p>Any thread. {@link #raise} is cheap when the epoch is not above every one seen so far (gateways report theirs
 * every second); a higher one is applied on the replan thread, before anything submitted there after the call.
 */
public final class EpochFloor {
    private static final Logger log = LoggerFactory.getLogger(PlacementCoordinator.class);

    private final AtomicLong elsewhere = new AtomicLong();
    /** The holds on, each with the number of the {@link #hold} call that put it on (a release ends only that one). */
    private final Map<String, Long> holds = new ConcurrentHashMap<>();
    private final AtomicLong holdCalls = new AtomicLong();
    private final Executor replanThread;
    private final BiConsumer<Long, String> apply;

    /** @param apply applies a new highest epoch (and where it was seen) on the replan thread */
    EpochFloor(Executor replanThread, BiConsumer<Long, String> apply) {
        this.replanThread = replanThread;
        this.apply = apply;
    }

    /**
     * {@code epoch} was seen {@code where} (for the log): no epoch at or below it is published from now on, and
     * when it is above the current one the coordinator places again above it.
     *
     * @throws IllegalArgumentException for an epoch of 2^63 or more (unsigned): no router gets there, and a broken
     *                                  value would leave no number above it
     */
    public void raise(long epoch, String where) {
        if (epoch < 0) {
            throw new IllegalArgumentException("epoch must be >= 0, got " + Long.toUnsignedString(epoch));
        }
        if (epoch <= elsewhere.get() || elsewhere.getAndAccumulate(epoch, Math::max) >= epoch) {
            return;
        }
        try {
            replanThread.execute(() -> apply.accept(epoch, where));
        } catch (RejectedExecutionException e) {
            log.debug("placement epoch {} seen elsewhere not applied: the coordinator is closed", epoch);
        }
    }

    /** The highest epoch seen elsewhere (0: none). */
    public long highestElsewhere() {
        return elsewhere.get();
    }

    /**
     * Nothing is placed (no start, switch or replan begins: they fail with an IllegalStateException naming
     * {@code reason}) until {@link #release} of the same reason.
     */
    public void hold(String reason) {
        holds.put(reason, holdCalls.incrementAndGet());
    }

    /**
     * Ends {@link #hold} on the replan thread, after everything queued there before (a floor raised before this). A
     * hold of the same reason put on again after this call stays on.
     */
    public void release(String reason) {
        Long which = holds.get(reason);
        if (which == null) {
            return;
        }
        try {
            replanThread.execute(() -> holds.remove(reason, which));
        } catch (RejectedExecutionException e) {
            holds.remove(reason, which);
        }
    }

    /** Whether a hold is on now. */
    public boolean held() {
        return !holds.isEmpty();
    }

    /** @throws IllegalStateException naming the holds, while any is on */
    void checkNotHeld() {
        if (!holds.isEmpty()) {
            throw new IllegalStateException("placement is on hold: " + String.join("; ", holds.keySet()));
        }
    }
}
