package io.moemesh.expert.assignment;

import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.residency.ResidentSet;
import io.moemesh.model.engine.ExpertKey;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.function.LongSupplier;

/**
 * Placement epochs of one instance. A new epoch is switched in three steps: load (its experts made resident),
 * serve (requests at the new epoch are accepted), drop (after the drain grace, experts no longer assigned
 * leave the resident set). During the grace, requests still carrying the previous epoch are served for the
 * experts the previous assignment held, because the gateway moves to a new placement only at its next step
 * boundary; after it they are stale. Epoch 0 in a request skips the epoch check (local mode, tests).
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
     * @param previous    the epoch served before {@code current}, still accepted until {@code drainDeadline}; null
     *                    when there is none (or its grace has been finalised)
     */
    private record State(Assignment current, Assignment previous, long drainDeadline) {
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
        this.state = new State(initial, null, 0);
        resident.restrictTo(initial::holds);
    }

    /** LoadAssignment: returns once the new epoch's experts are loaded (up to the budget) and it is served. */
    public LoadResult load(String forInstance, long epoch, List<ExpertKey> experts) {
        if (!instanceId.equals(forInstance)) {
            throw new IllegalStateException("assignment is for instance \"" + forInstance + "\", this is " + instanceId);
        }
        if (epoch == 0) {
            throw new IllegalArgumentException("assignment epoch must be >= 1, got 0");
        }
        Set<ExpertKey> seen = new HashSet<>();
        for (ExpertKey k : experts) {
            model.key(k.layer(), k.expert());
            if (!seen.add(k)) {
                throw new IllegalArgumentException(k + " is listed twice in the assignment for epoch " + epoch);
            }
        }
        Assignment next = Assignment.of(epoch, experts);
        synchronized (switching) {
            State s = state;
            long serving = s.current().epoch();
            if (Long.compareUnsigned(epoch, serving) < 0) {
                throw new IllegalStateException("assignment epoch " + Long.toUnsignedString(epoch)
                        + " is older than the served epoch " + Long.toUnsignedString(serving));
            }
            // epoch >= serving here, so the difference is the unsigned distance.
            if (serving != 0 && Long.compareUnsigned(epoch - serving, maxEpochJump) > 0) {
                throw new IllegalStateException("assignment epoch " + Long.toUnsignedString(epoch) + " jumps "
                        + Long.toUnsignedString(epoch - serving) + " epochs past the served epoch " + serving
                        + ", more than moemesh.expert.max-epoch-jump (" + maxEpochJump + "); epoch " + serving
                        + " stays served");
            }
            if (serving == 0 && epoch < 0) {
                throw new IllegalStateException("assignment epoch " + Long.toUnsignedString(epoch) + " is not below "
                        + "2^63: no placement gets there, and none could follow it; epoch 0 stays served");
            }
            if (epoch == serving) {
                if (!next.experts().equals(s.current().experts())) {
                    throw new IllegalStateException("epoch " + epoch + " is already served with a different assignment ("
                            + s.current().experts().size() + " experts); a new assignment needs a new epoch");
                }
                return new LoadResult(epoch, resident.preload(next.experts()), resident.residentBytes());
            }
            // 1. load: the new experts may become resident next to the ones still served.
            Assignment prev = inGrace(s) ? s.previous() : null;
            Assignment cur = s.current();
            resident.restrictTo(k -> next.holds(k) || cur.holds(k) || (prev != null && prev.holds(k)));
            int loaded = resident.preload(next.experts());
            // 2. serve: one previous epoch drains; an older one still draining ends now.
            state = new State(next, cur, nanoClock.getAsLong() + drainGraceNanos);
            resident.restrictTo(k -> next.holds(k) || cur.holds(k));
            // 3. drop happens in expireDrain() once the grace is over.
            if (drainGraceNanos <= 0) {
                expireDrain();
            }
            return new LoadResult(epoch, loaded, resident.residentBytes());
        }
    }

    /** Ends the previous epoch's grace once it is over: its experts that are no longer assigned are dropped. */
    public void expireDrain() {
        synchronized (switching) {
            State s = state;
            if (s.previous() != null && !inGrace(s)) {
                state = new State(s.current(), null, 0);
                resident.restrictTo(s.current()::holds);
            }
        }
    }

    private boolean inGrace(State s) {
        return s.previous() != null && nanoClock.getAsLong() - s.drainDeadline() < 0;
    }

    /**
     * The assignment that applies to a request routed under {@code requestEpoch}: the current one for its epoch,
     * the previous one for epochs from the previous up to the current during the grace; for 0 (no epoch
     * check), everything the instance still holds.
     *
     * @throws EpochNotServedException for a stale epoch or one newer than the served one
     */
    public Held heldFor(long requestEpoch) {
        State s = state;
        Assignment cur = s.current();
        boolean grace = inGrace(s);
        if (requestEpoch == 0) {
            Assignment prev = grace ? s.previous() : null;
            return new Held(cur.epoch(), cur.epoch(), k -> cur.holds(k) || (prev != null && prev.holds(k)));
        }
        if (requestEpoch == cur.epoch()) {
            return new Held(cur.epoch(), cur.epoch(), cur::holds);
        }
        // Epochs are compared as unsigned 64-bit values (uint64 on the wire). A previous "epoch 0" (no placement
        // yet) serves only requests that skip the check.
        if (Long.compareUnsigned(requestEpoch, cur.epoch()) < 0 && grace && s.previous().epoch() != 0
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

    public Assignment current() {
        return state.current();
    }

    public long servingEpoch() {
        return state.current().epoch();
    }

    public String instanceId() {
        return instanceId;
    }

    /** What a request at some epoch may use. */
    public record Held(long checkedEpoch, long servingEpoch, java.util.function.Predicate<ExpertKey> holds) {
        public boolean test(ExpertKey k) {
            return holds.test(k);
        }
    }
}
