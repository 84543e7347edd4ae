package io.moemesh.router.coordination;

import java.util.Set;
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
 * placement ConfigMap's (read at start, and whenever a write finds a newer one) and what instances say they hold (in
 * {@link EpochAttempts}). A gateway's WatchPlacement known_epoch and ReportRoutes placement_epoch are only hints
 * ({@link #hint}): one gateway sending a wrong number (a bug, or pointed at another mesh) must not lift every epoch
 * past what the instances accept (they refuse a jump above their max-epoch-jump), so a hint raises the floor only once
 * the instances confirm it ({@link EpochsElsewhere}). A hold ({@link #hold}) keeps the coordinator from starting any
 * switch or replan: until the ConfigMap's epoch is read, and while another router holds the lease.
 *
 * <p>Any thread. {@link #raise} and {@link #hint} are cheap when the epoch is not above every one seen so far
 * (gateways report theirs every second); a higher one is applied (or checked) on the replan thread, before anything
 * submitted there after the call.
 */
public final class EpochFloor {
    private static final Logger log = LoggerFactory.getLogger(PlacementCoordinator.class);

    private final AtomicLong elsewhere = new AtomicLong();
    /** The highest hint ever given (checked or not): a lower or equal one is not checked again. */
    private final AtomicLong hinted = new AtomicLong();
    /** The holds on (by identity: a release ends only its own). */
    private final Set<Hold> holds = ConcurrentHashMap.newKeySet();
    private final Executor replanThread;
    private final BiConsumer<Long, String> apply;
    private final BiConsumer<Long, String> check;

    /**
     * @param apply applies a new highest epoch (and where it was seen) on the replan thread
     * @param check checks a new highest hint (and who sent it) on the replan thread, {@link #confirm}ing it or not
     */
    EpochFloor(Executor replanThread, BiConsumer<Long, String> apply, BiConsumer<Long, String> check) {
        this.replanThread = replanThread;
        this.apply = apply;
        this.check = check;
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
        onReplanThread(() -> apply.accept(epoch, where), epoch);
    }

    /**
     * A gateway says it holds {@code epoch} ({@code where}, naming it, for the log): checked on the replan thread
     * against what the instances hold, it raises the floor like {@link #raise} only when confirmed. Each epoch above
     * every hint so far is checked once; 0 and 2^63 or more (unsigned: no router's epochs) are ignored.
     */
    public void hint(long epoch, String where) {
        if (epoch <= 0 || epoch <= elsewhere.get() || epoch <= hinted.get()
                || hinted.getAndAccumulate(epoch, Math::max) >= epoch) {
            return;
        }
        onReplanThread(() -> check.accept(epoch, where), epoch);
    }

    /** On the replan thread: a hint the instances confirmed. @return whether it raised the floor */
    boolean confirm(long epoch) {
        return elsewhere.getAndAccumulate(epoch, Math::max) < epoch;
    }

    private void onReplanThread(Runnable task, long epoch) {
        try {
            replanThread.execute(task);
        } catch (RejectedExecutionException e) {
            log.debug("placement epoch {} seen elsewhere not applied: the coordinator is closed", epoch);
        }
    }

    /** The highest epoch seen elsewhere (0: none). */
    public long highestElsewhere() {
        return elsewhere.get();
    }

    /** One {@link #hold}: {@link #release} ends exactly this one, whatever other holds have the same reason. */
    public static final class Hold {
        private final String reason;

        private Hold(String reason) {
            this.reason = reason;
        }

        @Override
        public String toString() {
            return reason;
        }
    }

    /**
     * Nothing is placed (no start, switch or replan begins: they fail with an IllegalStateException naming
     * {@code reason}) until {@link #release} of the hold returned.
     */
    public Hold hold(String reason) {
        Hold h = new Hold(reason);
        holds.add(h);
        return h;
    }

    /**
     * Ends {@code hold} on the replan thread, after everything queued there before (a floor raised before this).
     * Another hold, of the same reason or not, stays on: two reads that overlap each end their own.
     */
    public void release(Hold hold) {
        try {
            replanThread.execute(() -> holds.remove(hold));
        } catch (RejectedExecutionException e) {
            holds.remove(hold);
        }
    }

    /** Whether a hold is on now. */
    public boolean held() {
        return !holds.isEmpty();
    }

    /** The reasons of the holds on now, distinct, sorted, joined by "; ". */
    String holdReasons() {
        return String.join("; ", holds.stream().map(h -> h.reason).distinct().sorted().toList());
    }

    /** @throws IllegalStateException naming the holds, while any is on */
    void checkNotHeld() {
        if (!holds.isEmpty()) {
            throw new IllegalStateException("placement is on hold: " + holdReasons());
        }
    }
}
