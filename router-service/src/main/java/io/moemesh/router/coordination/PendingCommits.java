package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The COMMIT phase of {@link PlacementCoordinator}'s two-phase switch: the COMMIT of a published epoch on every
 * instance, and the COMMITs instances missed, kept and retried before the next PREPARE and on a timer between replans.
 * A missed COMMIT is kept, one per instance id, until it is delivered or superseded: also while its instance is out
 * of the set (a readiness flap), for the set that drops it may fail to publish and the instance come back into the
 * same set, where no switch runs and the next PREPARE would replace the epoch it still holds only prepared (then it
 * refuses the current epoch's calls). It is superseded by a newer epoch published without the instance (the gateways
 * leave the missed one), by the instance's next COMMIT, or by a new process under its id. Replan thread only (the
 * counts are read from any thread).
 */
final class PendingCommits {
    private static final Logger log = LoggerFactory.getLogger(PlacementCoordinator.class);

    /** A COMMIT {@code instance} missed: the instance as it was placed on (its endpoint then), and the epoch. */
    private record Missed(Instance instance, long epoch) {
    }

    private final InstanceLoader loader;
    private final ParallelLoads loads;
    private final Duration timeout;
    /**
     * By instance id: the id is what stays when a Kubernetes pod restarts (its name), while its endpoint (pod IP)
     * changes. Keyed by the whole Instance, the restarted pod would be a second entry and the old one would be
     * retried at the dead address forever.
     */
    private final Map<String, Missed> pendingCommits = new ConcurrentHashMap<>();
    private final AtomicLong commitFailures = new AtomicLong();
    /** The ids of the instances that committed the current epoch, retries included (replan thread only). */
    private final Set<String> committedCurrent = new LinkedHashSet<>();

    PendingCommits(InstanceLoader loader, ParallelLoads loads, Duration timeout) {
        this.loader = loader;
        this.loads = loads;
        this.timeout = timeout;
    }

    /** COMMITs missed (first tries and retries) since the start. */
    long failures() {
        return commitFailures.get();
    }

    /** Instances with a missed COMMIT not yet retried successfully. */
    int size() {
        return pendingCommits.size();
    }

    /**
     * COMMIT of a published epoch on every instance. An instance that misses it still answers both epochs, which is
     * safe (it only keeps the older epoch's experts longer); it is counted, logged and retried before the next PREPARE and, meanwhile, on a timer
     * ({@link #retryBetweenReplans}).
     *
     * @return the ids of the instances that committed it, in the placement's order
     */
    List<String> commitEverywhere(Placement p) throws InterruptedException {
        long epoch = p.getEpoch();
        Map<Instance, Throwable> failed = loads.onEvery(p.getInstancesList(),
                in -> loader.commit(in, epoch, timeout));
        List<String> committed = new ArrayList<>();
        // A COMMIT an instance outside this epoch missed is of an older epoch the gateways now leave: superseded.
        Set<String> ids = new HashSet<>();
        p.getInstancesList().forEach(in -> ids.add(in.getId()));
        pendingCommits.entrySet().removeIf(e -> !ids.contains(e.getKey())
                && Long.compareUnsigned(e.getValue().epoch(), epoch) < 0);
        for (Instance in : p.getInstancesList()) {
            Throwable t = failed.get(in);
            if (t == null) {
                pendingCommits.remove(in.getId());
                committed.add(in.getId());
            } else {
                commitFailures.incrementAndGet();
                pendingCommits.put(in.getId(), new Missed(in, epoch));
                log.warn("placement epoch {} is published but {} did not commit it (retried until it does; it "
                        + "answers the previous epoch too meanwhile): {}", epoch, PlacementCoordinator.describe(in), t.getMessage());
            }
        }
        return committed;
    }

    /**
     * Retries the COMMITs an instance missed, before a newer epoch is prepared: a PREPARE of a newer epoch replaces
     * a still-prepared one on the instance, which would drop the published epoch the gateways dispatch under. The
     * retry goes to the instance as it is in {@code members} now; one not among them is not asked, and its missed
     * COMMIT is kept for when it is back. An instance that answers that it holds the epoch neither prepared nor served
     * (restarted) has nothing to lose, and neither has one whose endpoint changed (a new process, e.g. a restarted pod
     * with a new IP: it never prepared that epoch, and the old address is dead); any other failure aborts the replan
     * before anything is prepared.
     */
    void retry(List<Instance> members, long currentEpoch) throws InterruptedException {
        Retried r = retryNow(members);
        if (!r.blocking().isEmpty()) {
            String kept = "epoch " + currentEpoch + " stays current";
            log.warn("replan aborted before preparing a new epoch: {} failed the COMMIT retry; {}", r.blocking(), kept);
            throw new ReplanAbortedException("no new placement epoch was prepared: " + String.join("; ", r.blocking())
                    + " failed LoadAssignment (COMMIT retry; preparing a newer epoch there would drop the one the "
                    + "gateways use); " + kept, r.firstCause(),
                    Quarantine.strikes(r.failedIds(), r.blocking().size(), members.size()));
        }
    }

    /**
     * Retries the missed COMMITs between replans (a timer calls it while any are pending, see
     * {@link PlacementCoordinator#retryMissedCommits}): without it a pod whose COMMIT failed once would wait for the
     * next replan, which may never come with a stable pod set and no periodic replan, and its readiness gate would stay
     * False. The same rules as {@link #retry}, but a failure only keeps the COMMIT pending for the next tick.
     *
     * @return by instance id, the epochs committed now
     */
    Map<String, Long> retryBetweenReplans(List<Instance> members) throws InterruptedException {
        Retried r = retryNow(members);
        if (!r.blocking().isEmpty()) {
            log.warn("COMMIT retry failed on {}; tried again after a pause", r.blocking());
        }
        return r.committed();
    }

    /** The current epoch ({@code p}) was committed by {@code ids}: its committed set starts over from them. */
    void committedCurrent(List<String> ids) {
        committedCurrent.clear();
        committedCurrent.addAll(ids);
    }

    /**
     * {@link #retryBetweenReplans}, noting the instances that commit {@code current} now.
     *
     * @return every id that committed {@code current} (retries included) when a retry added one; else null
     */
    List<String> retryCurrent(Placement current, List<Instance> members) throws InterruptedException {
        boolean more = false;
        if (size() > 0 && current != null) {
            for (var e : retryBetweenReplans(members).entrySet()) {
                more |= e.getValue() == current.getEpoch() && committedCurrent.add(e.getKey());
            }
        }
        return more ? List.copyOf(committedCurrent) : null;
    }

    /** {@code failedIds}: the blocking instances' ids with their failure. */
    private record Retried(Map<String, Long> committed, List<String> blocking, Throwable firstCause,
                           Map<String, String> failedIds) {
    }

    private Retried retryNow(List<Instance> members) throws InterruptedException {
        Map<String, Instance> byId = new HashMap<>();
        members.forEach(in -> byId.put(in.getId(), in));
        pendingCommits.entrySet().removeIf(e -> {
            Instance now = byId.get(e.getKey());
            Instance then = e.getValue().instance();
            if (now == null) {
                return false; // out of the set for now: kept, asked once it is back (or superseded meanwhile)
            }
            if (!now.getEndpoint().equals(then.getEndpoint())) {
                log.info("{} is at {} now, a new process that never prepared placement epoch {}: its missed COMMIT is "
                        + "not retried", PlacementCoordinator.describe(then), now.getEndpoint(), e.getValue().epoch());
                return true;
            }
            return false;
        });
        Map<String, Long> committed = new LinkedHashMap<>();
        List<String> blocking = new ArrayList<>();
        Map<String, String> failedIds = new LinkedHashMap<>();
        if (pendingCommits.isEmpty()) {
            return new Retried(committed, blocking, null, Map.of());
        }
        Map<String, Missed> pending = new LinkedHashMap<>(pendingCommits);
        pending.keySet().retainAll(byId.keySet());
        if (pending.isEmpty()) {
            return new Retried(committed, blocking, null, Map.of());
        }
        List<Instance> instances = pending.keySet().stream().map(byId::get).toList();
        Map<Instance, Throwable> failed = loads.onEvery(instances,
                in -> loader.commit(in, pending.get(in.getId()).epoch(), timeout));
        Throwable firstCause = null;
        for (Instance in : instances) {
            Throwable t = failed.get(in);
            long epoch = pending.get(in.getId()).epoch();
            if (t == null) {
                pendingCommits.remove(in.getId());
                committed.put(in.getId(), epoch);
                log.info("{} committed placement epoch {} on retry", PlacementCoordinator.describe(in), epoch);
            } else if (t instanceof InstanceRefusedException) {
                pendingCommits.remove(in.getId());
                log.warn("{} holds placement epoch {} neither prepared nor served (restarted?): nothing to commit: {}",
                        PlacementCoordinator.describe(in), epoch, t.getMessage());
            } else {
                commitFailures.incrementAndGet();
                blocking.add(PlacementCoordinator.describe(in) + ": epoch " + epoch + ": " + t.getMessage());
                failedIds.put(in.getId(), "COMMIT retry of epoch " + epoch + ": " + t.getMessage());
                firstCause = firstCause == null ? t : firstCause;
            }
        }
        return new Retried(committed, blocking, firstCause, failedIds);
    }
}
