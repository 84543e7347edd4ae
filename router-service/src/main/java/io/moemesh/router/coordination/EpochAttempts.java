package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The epoch numbers {@link PlacementCoordinator} attempts, and the PREPARE phase of its two-phase switch. Replan
 * thread only.
 *
 * <p>The floor is the highest epoch number ever sent to an instance or known to be held or published elsewhere
 * ({@link EpochStore}'s epochs.json, the placement ConfigMap's epoch, what instances say they hold): a new number goes
 * above it, and it is never lowered, so no number an instance may hold is used for another assignment.
 *
 * <p>One exception keeps failed attempts from climbing: while the last attempt was not published and nothing raised
 * the floor since, the next attempt reuses its number, whatever its assignment. Expert-services refuse an epoch more
 * than their max-epoch-jump (1000 by default) above the one they serve, and the router retries a failed switch every
 * few seconds with a plan from the live route window (which differs from try to try): a new number per try would,
 * after about half an hour of an instance being down, leave every instance refusing every epoch, for good (the floor
 * is on disk). Reusing the number is safe because an unpublished epoch is one no gateway dispatches under: an
 * instance this router sent it to with other experts, and which did not confirm the ABORT, is told to ABORT it first
 * (then it accepts the number with the new experts). The number is given up only when an instance refuses the
 * PREPARE and says it holds that epoch or a later one (DescribeInstance): another router's, or one whose ABORT never
 * arrived.
 */
final class EpochAttempts {
    private static final Logger log = LoggerFactory.getLogger(PlacementCoordinator.class);
    /** How long an instance may take to say which epoch it holds (or the load timeout, if shorter). */
    static final Duration DESCRIBE_TIMEOUT = Duration.ofSeconds(5);

    private final EpochStore store;
    private final InstanceLoader loader;
    private final ParallelLoads loads;
    private final Duration timeout;
    private long floor;
    /** The last attempt, while it is not published and nothing raised the floor to its number since. */
    private Placement unpublished;
    /**
     * Instances sent a PREPARE of {@code unpublished}'s number that may still hold it prepared (no ABORT confirmed),
     * with the experts sent. By id and endpoint ({@link #key}): the process that was sent it, whatever else discovery
     * reports of it later (a failure domain or memory budget that changed would otherwise hide it, and its PREPARE of
     * other experts at this number would be refused for want of an ABORT).
     */
    private final Map<String, List<AssignedExpert>> mayHold = new HashMap<>();

    EpochAttempts(EpochStore store, InstanceLoader loader, ParallelLoads loads, Duration timeout) {
        this.store = store;
        this.loader = loader;
        this.loads = loads;
        this.timeout = timeout;
        this.floor = store.restoreHighestAttempted();
    }

    /** The number of the next attempt: the unpublished last attempt's, else the first above the floor. */
    long next(long currentEpoch) {
        if (unpublished != null && Long.compareUnsigned(unpublished.getEpoch(), currentEpoch) > 0) {
            return unpublished.getEpoch();
        }
        return maxUnsigned(floor, currentEpoch) + 1;
    }

    /**
     * No later attempt uses {@code epoch} or a lower number (held or published elsewhere). Never lowers the floor;
     * an unpublished attempt at or below it is given up (an instance may hold its number with other experts).
     *
     * @return whether the floor rose
     */
    boolean raiseFloor(long epoch) {
        if (unpublished != null && Long.compareUnsigned(epoch, unpublished.getEpoch()) >= 0) {
            unpublished = null;
            mayHold.clear();
        }
        if (Long.compareUnsigned(epoch, floor) > 0) {
            floor = epoch;
            return true;
        }
        return false;
    }

    /** Epoch numbers are unsigned 64-bit (as everywhere else): the larger of two. */
    private static long maxUnsigned(long a, long b) {
        return Long.compareUnsigned(a, b) >= 0 ? a : b;
    }

    /** The process an instance is: its id and endpoint (an endpoint holds no space). */
    private static String key(Instance in) {
        return in.getId() + " " + in.getEndpoint();
    }

    /** {@code p} was published (or restored as the current epoch): the next attempt takes a new number. */
    void published(Placement p) {
        floor = maxUnsigned(floor, p.getEpoch());
        unpublished = null;
        mayHold.clear();
    }

    /**
     * The number the first epoch of this run may use: {@code deal}'s, unless an instance holds it or a higher one
     * (this router's state folder was lost, e.g. a recreated pod's emptyDir: they refuse an older PREPARE, and
     * gateways an epoch not newer than theirs), then the first above all. Instances that accept the deal as it is
     * ({@link HeldEpochs#allowAsIs}: e.g. {@code moemesh up}'s, which loaded it from the placement file) keep its
     * number. An instance that does not answer is skipped: its PREPARE fails.
     */
    long firstEpoch(Placement deal, List<Instance> instances, long currentEpoch) throws InterruptedException {
        Map<Instance, HeldEpochs> held = held(instances);
        if (HeldEpochs.allowAsIs(deal, held)) {
            return deal.getEpoch();
        }
        long highest = held.values().stream().mapToLong(HeldEpochs::highest).max().orElse(0);
        log.warn("an expert-service instance already holds placement epoch {}, at or above the {} this router would "
                + "start at (its state folder {} was lost or is older): continuing above it", highest,
                deal.getEpoch(), store.routerDir());
        raiseFloor(highest);
        return next(currentEpoch);
    }

    /**
     * The last run's published epoch ({@code saved}, null: none) continued on {@code instances}, or null when it may
     * not be: other instances (ids and endpoints), another model, or below {@code seenElsewhere} (gateways that hold
     * a newer one would ignore it); then its number is given up. Continued, it is PREPAREd again on each instance: one
     * that restarted with this router holds nothing, and nothing else would give it its experts back (a no-op where
     * the epoch is served). Best effort: the epoch is the gateways' current one whatever an instance answers, so it
     * is published in any case.
     */
    Placement restore(Placement saved, List<Instance> instances, EpochPlans plans, long seenElsewhere)
            throws InterruptedException {
        if (saved == null) {
            return null;
        }
        if (!PlacementMessages.sameInstances(saved.getInstancesList(), instances) || !plans.fitsModel(saved)
                || Long.compareUnsigned(seenElsewhere, saved.getEpoch()) > 0) {
            raiseFloor(saved.getEpoch());
            log.info("the restored placement epoch {} is for other instances or another model, or below one seen "
                    + "elsewhere: dealing evenly", saved.getEpoch());
            return null;
        }
        // Same ids and endpoints: the rest (a failure domain an older router did not save) comes from discovery.
        Placement restored = saved.toBuilder().clearInstances().addAllInstances(instances).build();
        long epoch = restored.getEpoch();
        log.info("continuing at placement epoch {} (restored from {})", epoch, store.routerDir());
        Map<Instance, Throwable> unprepared = loads.onEvery(instances,
                in -> loader.prepare(in, epoch, PlacementMessages.assignment(restored, in.getId()), timeout));
        unprepared.forEach((in, t) -> log.warn("restored placement epoch {}: PREPARE on {} failed ({}); published "
                + "all the same, as the epoch the gateways already follow", epoch, PlacementCoordinator.describe(in),
                t.getMessage()));
        return restored;
    }

    /**
     * Whether every one of {@code instances} serves {@code p}'s epoch with exactly the experts {@code p} gives it,
     * nothing prepared above: then {@code p} is that epoch as everyone who saw it elsewhere (a gateway, the
     * ConfigMap) has it, and it may be published as it is rather than above it.
     */
    boolean servedAsIs(Placement p, List<Instance> instances) throws InterruptedException {
        long epoch = p.getEpoch();
        Map<Instance, HeldEpochs> held = held(instances);
        return held.size() == instances.size() && held.entrySet().stream().allMatch(e -> e.getValue().served() == epoch
                && Long.compareUnsigned(e.getValue().prepared(), epoch) <= 0
                && e.getValue().servedExperts().equals(PlacementMessages.assignment(p, e.getKey().getId())));
    }

    /** What each of {@code instances} says it holds (DescribeInstance); one that does not answer is left out. */
    Map<Instance, HeldEpochs> held(List<Instance> instances) throws InterruptedException {
        Map<Instance, HeldEpochs> held = new ConcurrentHashMap<>();
        Duration t = timeout.compareTo(DESCRIBE_TIMEOUT) < 0 ? timeout : DESCRIBE_TIMEOUT;
        Map<Instance, Throwable> failed = loads.onEvery(instances, in -> held.put(in, loader.held(in, t)));
        failed.forEach((in, e) -> log.debug("{} did not say which epochs it holds: {}", PlacementCoordinator.describe(in),
                e.getMessage()));
        return held;
    }

    /**
     * The PREPARE phase: returns once every instance of {@code p} prepared it. When one fails, the instances that
     * prepared it are told to ABORT (best effort, logged: one that misses it keeps the epoch prepared until a newer
     * PREPARE replaces it, or is told again before its number is reused) and nothing is published.
     *
     * @param kept what stays current when it fails, for the messages
     * @throws ReplanAbortedException naming the instances that failed to prepare
     */
    void prepareEverywhere(Placement p, String kept) throws InterruptedException {
        long epoch = p.getEpoch();
        if (unpublished == null || unpublished.getEpoch() != epoch) {
            mayHold.clear();
        }
        abortOtherAssignments(p);
        unpublished = p;
        floor = maxUnsigned(floor, epoch);
        store.recordAttempt(floor);
        List<Instance> instances = p.getInstancesList();
        Map<Instance, Throwable> failed = loads.onEvery(instances,
                in -> loader.prepare(in, epoch, PlacementMessages.assignment(p, in.getId()), timeout));
        for (Instance in : instances) {
            // A refusal means it did not take these experts; anything else may have reached it (a timeout).
            if (!(failed.get(in) instanceof InstanceRefusedException)) {
                mayHold.put(key(in), PlacementMessages.assignment(p, in.getId()));
            }
        }
        if (failed.isEmpty()) {
            return;
        }
        List<Instance> prepared = instances.stream().filter(in -> !failed.containsKey(in)).toList();
        Map<Instance, Throwable> abortFailed = loads.onEvery(prepared, in -> loader.abort(in, epoch, timeout));
        prepared.stream().filter(in -> !abortFailed.containsKey(in)).forEach(in -> mayHold.remove(key(in)));
        abortFailed.forEach((in, t) -> log.warn("placement epoch {}: ABORT on {} failed, so it keeps the epoch "
                + "prepared (still serving the current one) until a newer epoch replaces it: {}", epoch,
                PlacementCoordinator.describe(in), t.getMessage()));
        List<String> failures = new ArrayList<>();
        Map<String, String> failedIds = new LinkedHashMap<>();
        failed.forEach((in, t) -> {
            failures.add(PlacementCoordinator.describe(in) + ": " + t.getMessage());
            // A refusal of the epoch's number (a jump, a number held) is not about the pod: no strike against it.
            // Other refusals (an assignment for another instance) are the pod's, and count.
            if (!Quarantine.refusesTheEpoch(t)) {
                failedIds.put(in.getId(), "PREPARE of epoch " + epoch + ": " + t.getMessage());
            }
        });
        log.warn("placement epoch {} not published: {} failed to prepare it; {} (the {} instances that prepared it "
                + "were told to ABORT, {} of them did not answer)", epoch, failures, kept, prepared.size(),
                abortFailed.size());
        giveUpNumberIfHeld(epoch, failed);
        throw new ReplanAbortedException("placement epoch " + epoch + " was not published: "
                + String.join("; ", failures) + " failed LoadAssignment (PREPARE); " + kept,
                failed.values().iterator().next(), Quarantine.strikes(failedIds, failed.size(), instances.size()));
    }

    /**
     * After every instance prepared {@code p}, something rules its publication out ({@code why}: the lease lost):
     * every instance is told to ABORT it (best effort, as after a failed PREPARE), so the router that places next
     * finds none of them holding it, and its number is reused by this router's next attempt.
     *
     * @throws ReplanAbortedException always, naming no instance (none of them failed)
     */
    void abandon(Placement p, String why) throws InterruptedException {
        long epoch = p.getEpoch();
        List<Instance> instances = p.getInstancesList();
        Map<Instance, Throwable> abortFailed = loads.onEvery(instances, in -> loader.abort(in, epoch, timeout));
        instances.stream().filter(in -> !abortFailed.containsKey(in)).forEach(in -> mayHold.remove(key(in)));
        log.warn("placement epoch {} prepared everywhere but not published ({}): the {} instances were told to ABORT "
                + "it, {} of them did not answer", epoch, why, instances.size(), abortFailed.size());
        throw new ReplanAbortedException("placement epoch " + epoch + " was not published: " + why
                + " (the instances that prepared it were told to ABORT it)", null);
    }

    /**
     * Before the unpublished number is reused for {@code p}: an instance that may hold it prepared with other experts
     * would refuse the new ones (an epoch is one assignment), so it is told to ABORT it. A failed ABORT is only
     * logged: that instance's PREPARE fails too, or is refused and gives the number up.
     */
    private void abortOtherAssignments(Placement p) throws InterruptedException {
        long epoch = p.getEpoch();
        List<Instance> stale = p.getInstancesList().stream().filter(in -> mayHold.containsKey(key(in))
                && !mayHold.get(key(in)).equals(PlacementMessages.assignment(p, in.getId()))).toList();
        if (stale.isEmpty()) {
            return;
        }
        Map<Instance, Throwable> abortFailed = loads.onEvery(stale, in -> loader.abort(in, epoch, timeout));
        stale.stream().filter(in -> !abortFailed.containsKey(in)).forEach(in -> mayHold.remove(key(in)));
        abortFailed.forEach((in, t) -> log.info("placement epoch {} is tried again with other experts, but the ABORT of "
                + "its last try on {} failed: {}", epoch, PlacementCoordinator.describe(in), t.getMessage()));
    }

    /**
     * An instance that refused the PREPARE and holds {@code epoch} or a later one (served or prepared) would refuse
     * this number again: the next attempt goes above what it holds. A refusal for another reason (e.g. too far above
     * the epoch it serves) keeps the number: a higher one could only be refused more.
     */
    private void giveUpNumberIfHeld(long epoch, Map<Instance, Throwable> failed) throws InterruptedException {
        List<Instance> refused = failed.entrySet().stream()
                .filter(e -> e.getValue() instanceof InstanceRefusedException).map(Map.Entry::getKey).toList();
        if (refused.isEmpty()) {
            return;
        }
        long highest = held(refused).values().stream().mapToLong(HeldEpochs::highest).max().orElse(0);
        if (Long.compareUnsigned(highest, epoch) >= 0) {
            log.warn("an instance refused placement epoch {} and holds epoch {}: the next attempt goes above it", epoch,
                    highest);
            raiseFloor(highest);
        }
    }
}
