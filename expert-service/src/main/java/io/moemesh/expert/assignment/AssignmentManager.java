package io.moemesh.expert.assignment;

import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.residency.ResidentSet;
import io.moemesh.model.engine.ExpertKey;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.function.LongSupplier;
import java.util.function.Predicate;

/**
 * Placement epochs of one instance (expert.proto, LoadAssignmentRequest). The instance serves one epoch, may hold one
 * prepared epoch next to it, and drains the previously served one for the grace after a switch.
 *
 * <p>A switch has three steps: load (the new epoch's experts made resident next to the served ones), serve
 * (requests at the new epoch are accepted), drop (after the drain grace, experts no longer assigned leave the
 * resident set). {@link #load} does all at once; the placer's two-phase switch splits them: {@link #prepare} loads
 * and accepts requests at the prepared epoch while the served one keeps being answered with no deadline (a placer
 * that publishes the epoch only once every instance prepared it lets gateways move to it as soon as it is published),
 * {@link #commit} makes the prepared epoch the served one and starts the old one's grace, {@link #abort} drops a
 * prepared epoch (a placer whose other instances failed to prepare it backs out: the served epoch stays, forever,
 * so a failed switch never leaves the mesh with instances that dropped the epoch the gateways still use).
 *
 * <p>During the grace, requests still carrying the previous epoch are served for the experts the previous
 * assignment held, because the gateway moves to a new placement only at its next step boundary; after it they are
 * stale. Epoch 0 in a request skips the epoch check (local mode, tests).
 *
 * <p>Epochs only grow, so one absurd epoch would pin the instance: after 2^64-1 no placement can follow, and a
 * far jump leaves it ahead of every gateway. A new epoch may therefore be at most {@code maxEpochJump} past the
 * served one (FAILED_PRECONDITION otherwise, the served epoch unchanged). The first epoch of an instance that
 * serves none yet (0) cannot be judged that way (the router's epoch may be anywhere after a restart); it only
 * has to be below 2^63, which no placement that counts its changes reaches.
 */
public final class AssignmentManager {
    /** The epoch-jump limit of the constructor without one (and of {@code moemesh.expert.max-epoch-jump}). */
    public static final long DEFAULT_MAX_EPOCH_JUMP = 1000;

    private final ExpertModel model;
    private final String instanceId;
    private final ResidentSet resident;
    private final long drainGraceNanos;
    private final long maxEpochJump;
    private final LongSupplier nanoClock;
    private final Object switching = new Object();
    private volatile State state;

    /**
     * @param current  the served epoch
     * @param previous the epoch served before {@code current}, still accepted until {@code drainDeadline}; null
     *                 when there is none (or its grace has been finalised)
     * @param prepared an epoch newer than {@code current}, loaded and accepted but not committed; null when none
     */
    private record State(Assignment current, Assignment previous, long drainDeadline, Assignment prepared) {
    }

    public AssignmentManager(ExpertModel model, String instanceId, ResidentSet resident, Assignment initial,
                             Duration drainGrace, LongSupplier nanoClock) {
        this(model, instanceId, resident, initial, drainGrace, DEFAULT_MAX_EPOCH_JUMP, nanoClock);
    }

    /** @param maxEpochJump how far past the served epoch a new one may be (>= 1) */
    public AssignmentManager(ExpertModel model, String instanceId, ResidentSet resident, Assignment initial,
                             Duration drainGrace, long maxEpochJump, LongSupplier nanoClock) {
        if (maxEpochJump < 1) {
            throw new IllegalArgumentException("max epoch jump must be >= 1, got " + maxEpochJump);
        }
        this.maxEpochJump = maxEpochJump;
        this.model = model;
        this.instanceId = instanceId;
        this.resident = resident;
        this.drainGraceNanos = drainGrace.toNanos();
        this.nanoClock = nanoClock;
        this.state = new State(initial, null, 0, null);
        resident.restrictTo(initial::holds);
    }

    /**
     * LoadAssignment without a stage: prepares and commits at once; returns once the new epoch's experts are loaded
     * (up to the budget) and it is served.
     */
    public LoadResult load(String forInstance, long epoch, List<ExpertKey> experts) {
        Assignment next = validated(forInstance, epoch, experts);
        synchronized (switching) {
            int loaded = prepareLocked(next);
            if (state.current().epoch() != epoch) {
                commitLocked();
            }
            return result(epoch, loaded);
        }
    }

    /**
     * LoadAssignment PREPARE: loads {@code epoch}'s experts next to the served ones and accepts requests at it once
     * this returns; the served epoch stays, with no drain deadline, until a commit. Idempotent for the prepared or
     * the served epoch with the same experts; a newer epoch replaces a prepared one.
     *
     * @throws EpochNumberRefusedException for an epoch older than the served or the prepared one, too far past the
     *                                     served one, or already held with other experts
     * @throws IllegalStateException       for an assignment meant for another instance
     */
    public LoadResult prepare(String forInstance, long epoch, List<ExpertKey> experts) {
        Assignment next = validated(forInstance, epoch, experts);
        synchronized (switching) {
            return result(epoch, prepareLocked(next));
        }
    }

    /**
     * LoadAssignment COMMIT: the prepared epoch becomes the served one and the old served one drains for the grace
     * (an older one still draining ends now). A no-op for the served epoch.
     *
     * @throws IllegalStateException for an epoch that is neither prepared nor served
     */
    public LoadResult commit(String forInstance, long epoch) {
        checkInstanceAndEpoch(forInstance, epoch);
        synchronized (switching) {
            State s = state;
            if (epoch != s.current().epoch()) {
                if (s.prepared() == null || s.prepared().epoch() != epoch) {
                    throw new IllegalStateException("cannot commit epoch " + Long.toUnsignedString(epoch)
                            + ": it is neither prepared nor served (serving epoch "
                            + Long.toUnsignedString(s.current().epoch()) + ", prepared " + preparedText(s) + ")");
                }
                commitLocked();
            }
            return result(epoch, residentCount(state.current()));
        }
    }

    /**
     * LoadAssignment ABORT: drops the prepared epoch (its experts not otherwise held leave the resident set); the
     * served epoch stays, with no deadline. A no-op for any epoch that is not prepared (unknown, older, replaced).
     *
     * @throws IllegalStateException for the served epoch
     */
    public LoadResult abort(String forInstance, long epoch) {
        checkInstanceAndEpoch(forInstance, epoch);
        synchronized (switching) {
            State s = state;
            if (epoch == s.current().epoch()) {
                throw new IllegalStateException("cannot abort epoch " + Long.toUnsignedString(epoch)
                        + ": it is the served epoch (only a prepared epoch can be aborted; prepared " + preparedText(s)
                        + ")");
            }
            if (s.prepared() != null && s.prepared().epoch() == epoch) {
                State next = new State(s.current(), s.previous(), s.drainDeadline(), null);
                state = next;
                resident.restrictTo(holdsAny(next));
            }
            return result(epoch, 0);
        }
    }

    private void checkInstanceAndEpoch(String forInstance, long epoch) {
        if (!instanceId.equals(forInstance)) {
            throw new IllegalStateException("assignment is for instance \"" + forInstance + "\", this is " + instanceId);
        }
        if (epoch == 0) {
            throw new IllegalArgumentException("assignment epoch must be >= 1, got 0");
        }
    }

    private Assignment validated(String forInstance, long epoch, List<ExpertKey> experts) {
        checkInstanceAndEpoch(forInstance, epoch);
        Set<ExpertKey> seen = new HashSet<>();
        for (ExpertKey k : experts) {
            model.key(k.layer(), k.expert());
            if (!seen.add(k)) {
                throw new IllegalArgumentException(k + " is listed twice in the assignment for epoch " + epoch);
            }
        }
        return Assignment.of(epoch, experts);
    }

    /** Prepares {@code next} (or confirms it is served); returns how many of its experts are resident. */
    private int prepareLocked(Assignment next) {
        State s = state;
        long epoch = next.epoch();
        long serving = s.current().epoch();
        if (Long.compareUnsigned(epoch, serving) < 0) {
            throw refused(s, epoch, "assignment epoch " + Long.toUnsignedString(epoch)
                    + " is older than the served epoch " + Long.toUnsignedString(serving));
        }
        // epoch >= serving here, so the difference is the unsigned distance.
        if (serving != 0 && Long.compareUnsigned(epoch - serving, maxEpochJump) > 0) {
            throw refused(s, epoch, "assignment epoch " + Long.toUnsignedString(epoch) + " jumps "
                    + Long.toUnsignedString(epoch - serving) + " epochs past the served epoch " + serving
                    + ", more than moemesh.expert.max-epoch-jump (" + maxEpochJump + "); epoch " + serving
                    + " stays served");
        }
        if (serving == 0 && epoch < 0) {
            throw refused(s, epoch, "assignment epoch " + Long.toUnsignedString(epoch) + " is not below "
                    + "2^63: no placement gets there, and none could follow it; epoch 0 stays served");
        }
        if (epoch == serving) {
            requireSame(s, next, s.current(), "served");
            return resident.preload(next.experts());
        }
        Assignment prepared = s.prepared();
        if (prepared != null && Long.compareUnsigned(epoch, prepared.epoch()) < 0) {
            throw refused(s, epoch, "assignment epoch " + Long.toUnsignedString(epoch)
                    + " is older than the prepared epoch " + Long.toUnsignedString(prepared.epoch()));
        }
        if (prepared != null && epoch == prepared.epoch()) {
            requireSame(s, next, prepared, "prepared");
            return resident.preload(next.experts());
        }
        // Load next to what is answered now; a replaced prepared epoch's experts go unless still held otherwise.
        State withNext = new State(s.current(), s.previous(), s.drainDeadline(), next);
        resident.restrictTo(holdsAny(withNext));
        int loaded;
        try {
            loaded = resident.preload(next.experts());
        } catch (Throwable t) {
            // Any Throwable: a truncated weights file fails MemorySegment.load with an InternalError, and a filter
            // left widened would keep admitting (and loading) the failed epoch's experts. The Error itself goes on:
            // the caller decides what it means (ExpertGrpcService answers INTERNAL; an OutOfMemoryError ends the JVM).
            resident.restrictTo(holdsAny(state));
            throw t;
        }
        // Accepted from now on: requests at the prepared epoch must be answered as soon as the placer publishes it.
        state = withNext;
        return loaded;
    }

    private static void requireSame(State s, Assignment next, Assignment held, String how) {
        if (!next.experts().equals(held.experts())) {
            throw refused(s, next.epoch(), "epoch " + Long.toUnsignedString(next.epoch()) + " is already " + how
                    + " with a different assignment (" + held.experts().size()
                    + " experts); a new assignment needs a new epoch");
        }
    }

    /** A refusal of {@code epoch}'s number, with the epochs {@code s} holds (its wording is for people only). */
    private static EpochNumberRefusedException refused(State s, long epoch, String message) {
        return new EpochNumberRefusedException(message, epoch, s.current().epoch(),
                s.prepared() == null ? 0 : s.prepared().epoch());
    }

    /** The prepared epoch becomes the served one; the served one drains; an older one still draining ends now. */
    private void commitLocked() {
        State s = state;
        Assignment next = s.prepared();
        Assignment cur = s.current();
        State committed = new State(next, cur, nanoClock.getAsLong() + drainGraceNanos, null);
        state = committed;
        resident.restrictTo(holdsAny(committed));
        // The drop happens in expireDrain() once the grace is over.
        if (drainGraceNanos <= 0) {
            expireDrain();
        }
    }

    /** Ends the previous epoch's grace once it is over: its experts that are no longer assigned are dropped. */
    public void expireDrain() {
        synchronized (switching) {
            State s = state;
            if (s.previous() != null && !inGrace(s)) {
                State next = new State(s.current(), null, 0, s.prepared());
                state = next;
                resident.restrictTo(holdsAny(next));
            }
        }
    }

    private boolean inGrace(State s) {
        return s.previous() != null && nanoClock.getAsLong() - s.drainDeadline() < 0;
    }

    /** Everything {@code s} answers for: served, prepared, and the previous epoch while in its grace. */
    private Predicate<ExpertKey> holdsAny(State s) {
        Assignment cur = s.current();
        Assignment prev = inGrace(s) ? s.previous() : null;
        Assignment prep = s.prepared();
        return k -> cur.holds(k) || (prev != null && prev.holds(k)) || (prep != null && prep.holds(k));
    }

    /**
     * The assignment that applies to a request routed under {@code requestEpoch}: the current one for its epoch,
     * the prepared one for the prepared epoch, the previous one for epochs from the previous up to the current
     * during the grace; for 0 (no epoch check), everything the instance answers for.
     *
     * @throws EpochNotServedException for a stale epoch or one newer than the served one that is not prepared
     */
    public Held heldFor(long requestEpoch) {
        State s = state;
        Assignment cur = s.current();
        if (requestEpoch == 0) {
            return new Held(cur.epoch(), cur.epoch(), holdsAny(s));
        }
        if (requestEpoch == cur.epoch()) {
            return new Held(cur.epoch(), cur.epoch(), cur::holds);
        }
        Assignment prep = s.prepared();
        if (prep != null && requestEpoch == prep.epoch()) {
            return new Held(prep.epoch(), cur.epoch(), prep::holds);
        }
        // Epochs are compared as unsigned 64-bit values (uint64 on the wire). A previous "epoch 0" (no placement
        // yet) serves only requests that skip the check.
        if (Long.compareUnsigned(requestEpoch, cur.epoch()) < 0 && inGrace(s) && s.previous().epoch() != 0
                && Long.compareUnsigned(requestEpoch, s.previous().epoch()) >= 0) {
            Assignment prev = s.previous();
            return new Held(prev.epoch(), cur.epoch(), prev::holds);
        }
        throw new EpochNotServedException(requestEpoch, cur.epoch());
    }

    /**
     * Checks that every expert of {@code experts} (distinct ids within {@code layer}) is held for the request's
     * epoch; returns the serving epoch.
     *
     * @throws ExpertNotHeldException naming the first expert that is not
     */
    public long checkHeld(long requestEpoch, int layer, int[] experts) {
        Held held = heldFor(requestEpoch);
        for (int e : experts) {
            if (!held.test(new ExpertKey(layer, e))) {
                throw new ExpertNotHeldException(instanceId, layer, e, held.checkedEpoch(), held.servingEpoch());
            }
        }
        return held.servingEpoch();
    }

    /** The served assignment. */
    public Assignment current() {
        return state.current();
    }

    public long servingEpoch() {
        return state.current().epoch();
    }

    /** The prepared epoch, 0 when none. */
    public long preparedEpoch() {
        Assignment p = state.prepared();
        return p == null ? 0 : p.epoch();
    }

    public String instanceId() {
        return instanceId;
    }

    private LoadResult result(long epoch, int loaded) {
        State s = state;
        return new LoadResult(epoch, loaded, resident.residentBytes(), s.current().epoch(),
                s.prepared() == null ? 0 : s.prepared().epoch());
    }

    private int residentCount(Assignment a) {
        int n = 0;
        for (ExpertKey k : a.experts()) {
            if (resident.isResident(k)) {
                n++;
            }
        }
        return n;
    }

    private static String preparedText(State s) {
        return s.prepared() == null ? "none" : "epoch " + Long.toUnsignedString(s.prepared().epoch());
    }

    /** What a request at some epoch may use. */
    public record Held(long checkedEpoch, long servingEpoch, Predicate<ExpertKey> holds) {
        public boolean test(ExpertKey k) {
            return holds.test(k);
        }
    }
}
