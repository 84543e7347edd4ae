package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@link PlacementCoordinator}'s view of the epochs seen outside it: the {@link EpochFloor}, the gateways' hints and
 * their check, and whether the current epoch is behind. Replan thread, except {@link #isBehind} and the counts.
 *
 * <p>A gateway's epoch (its WatchPlacement known_epoch, its ReportRoutes placement_epoch) raises the floor only when
 * the instances confirm it: one of them holds that epoch or a later one (served or prepared: a router before this one
 * placed it), or every one of them serves none (all restarted, so nothing contradicts the gateway, which ignores any
 * epoch not newer than its own). Otherwise it is logged as an error naming the gateway, counted
 * ({@link #unconfirmed}), and changes nothing: a gateway sending epoch N + 5000 (a bug, or one pointed at another
 * mesh) would otherwise lift the next epoch past the max-epoch-jump every instance serving N refuses, for good (the
 * floor is written to epochs.json before each PREPARE), and the quarantine would then move the whole model to fresh
 * pods. A hint that comes before the first epoch is checked against the instances that epoch is placed on.
 */
final class EpochsElsewhere {
    private static final Logger log = LoggerFactory.getLogger(PlacementCoordinator.class);

    private final EpochFloor floor;
    private final EpochAttempts attempts;
    private final Supplier<Placement> current;
    private final Supplier<List<Instance>> members;
    private final Runnable behind;
    private final AtomicLong unconfirmed = new AtomicLong();
    /** The highest hint given before the first epoch, not checked yet (0: none), and who gave it. */
    private long pending;
    private String pendingFrom;

    /**
     * @param current the published epoch (null before the first)
     * @param members the instances of the current epoch
     * @param behind  told when an epoch seen elsewhere is above the current one
     */
    EpochsElsewhere(Executor replanThread, EpochAttempts attempts, Supplier<Placement> current,
                    Supplier<List<Instance>> members, Runnable behind) {
        this.attempts = attempts;
        this.current = current;
        this.members = members;
        this.behind = behind;
        this.floor = new EpochFloor(replanThread, this::raised, this::hinted);
    }

    EpochFloor floor() {
        return floor;
    }

    /** Gateway epochs ignored because no instance confirmed them (count). */
    long unconfirmed() {
        return unconfirmed.get();
    }

    /** Whether an epoch seen elsewhere is above the current one (then the next epoch must be published). */
    boolean isBehind() {
        Placement p = current.get();
        return p != null && Long.compareUnsigned(floor.highestElsewhere(), p.getEpoch()) > 0;
    }

    /** A new highest epoch seen elsewhere, or a confirmed hint. */
    private void raised(long epoch, String where) {
        if (attempts.raiseFloor(epoch)) {
            log.info("placement epoch {} seen elsewhere ({}): the next epoch goes above it", epoch, where);
        }
        if (isBehind()) {
            log.warn("placement epoch {} seen elsewhere ({}) is above the current epoch {}: placing again above it (a"
                    + " gateway ignores an epoch not newer than its own)", epoch, where, current.get().getEpoch());
            behind.run();
        }
    }

    private void hinted(long epoch, String from) {
        if (current.get() == null) {
            if (epoch > pending) {
                pending = epoch;
                pendingFrom = from;
            }
            return;
        }
        try {
            check(epoch, from, members.get());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt(); // the coordinator is closing
        }
    }

    /** Before the first epoch is placed on {@code instances}: the hint given before it, if any, is checked. */
    void checkPending(List<Instance> instances) throws InterruptedException {
        long epoch = pending;
        if (epoch > 0) {
            pending = 0;
            check(epoch, pendingFrom, instances);
        }
    }

    private void check(long epoch, String from, List<Instance> instances) throws InterruptedException {
        if (epoch <= floor.highestElsewhere()) {
            return;
        }
        Map<Instance, HeldEpochs> held = attempts.held(instances);
        long highest = held.values().stream().mapToLong(HeldEpochs::highest).max().orElse(0);
        boolean noneServed = !instances.isEmpty() && held.size() == instances.size()
                && held.values().stream().allMatch(h -> h.served() == 0);
        if (Long.compareUnsigned(highest, epoch) >= 0 || noneServed) {
            if (floor.confirm(epoch)) {
                raised(epoch, from + (noneServed ? ", no instance serving any epoch" : ", held by an instance"));
            }
            return;
        }
        unconfirmed.incrementAndGet();
        log.error("placement epoch {} from {} ignored: no expert-service instance holds it or a later one (the "
                + "highest they hold is {}) and not every one is fresh, so it is no epoch this mesh placed (that "
                + "gateway has a bug, or was pointed at another mesh). The next epoch goes above what the instances "
                + "and the placement ConfigMap hold; that gateway ignores epochs up to {} until it restarts",
                epoch, from, highest, epoch);
    }
}
