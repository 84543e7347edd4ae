package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.Instance;
import io.moemesh.router.placement.PlacementBudget;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.IntFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps the placement on the instance set discovery delivers (issue 12, item 3): a new set is placed on once it has
 * been stable for the settle time (pods that come or become ready together make one epoch, not one each), by
 * {@link PlacementCoordinator#switchTo} with the budget for that many instances and min(replicas, instances) copies of
 * every expert (the even deal's, and the least a planned epoch keeps). One switch at a time: a set that changes while
 * a switch (or a Replan) runs is placed on after it. A switch that fails (an instance did not load its share) is
 * retried after the retry pause while the set stays the same, at the same epoch number (whatever it plans:
 * {@link EpochAttempts}). A COMMIT an instance missed is retried after the retry pause, and again until none is pending
 * ({@link PlacementCoordinator#retryMissedCommits}). An empty set publishes nothing: the current epoch stays (before
 * the first one the router stays NOT_SERVING).
 */
public final class InstanceSetFollower implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(InstanceSetFollower.class);

    private final PlacementCoordinator coordinator;
    private final IntFunction<PlacementBudget> budgets;
    private final int replicas;
    private final Duration settle;
    private final Duration retry;
    private final ScheduledExecutorService timer;
    private final Runnable failed;
    private final AtomicLong switches = new AtomicLong();
    /** The set to place on: the latest delivered (timer thread and discovery thread). */
    private volatile List<Instance> wanted;
    /** The container restart counts of {@link #wanted}, by id (empty when discovery knows none). */
    private volatile Map<String, Integer> wantedRestarts = Map.of();
    private ScheduledFuture<?> pending;
    /** The next retry of missed COMMITs, while any are pending. */
    private ScheduledFuture<?> commitRetry;
    private boolean switching;

    /**
     * @param budgets  the planner's budget for a number of instances (may refuse one with IllegalArgumentException)
     * @param replicas the configured replicas; a smaller set gets one copy per instance at most
     * @param settle   how long a set must stay unchanged before it is placed on
     * @param retry    pause before a failed switch is tried again
     * @param timer    one thread: the settle timer and the switches' bookkeeping run there
     * @param failed   called when a switch did not publish (metrics)
     */
    public InstanceSetFollower(PlacementCoordinator coordinator, IntFunction<PlacementBudget> budgets, int replicas,
                               Duration settle, Duration retry, ScheduledExecutorService timer, Runnable failed) {
        this.coordinator = coordinator;
        this.budgets = budgets;
        this.replicas = replicas;
        this.settle = settle;
        this.retry = retry;
        this.timer = timer;
        this.failed = failed;
        // Every published epoch may leave COMMITs missed (a switch's, a Replan's, the restored one's): they are
        // retried every retry pause until none is left, so a pod that missed one does not wait for the next replan
        // (none may come) to be committed and marked placed.
        coordinator.onCommitted((p, ids, restarts) -> retryCommitsLater());
    }

    /** The ready set changed (any thread): it is placed on once stable for the settle time. */
    public void offer(List<Instance> ready) {
        offer(ready, Map.of());
    }

    /**
     * The ready set or its pods' container restart counts ({@code restarts}, by id) changed (any thread). A pod whose
     * count moved on is a new process at the same endpoint, holding no experts: it is placed on again like a new
     * instance.
     */
    public void offer(List<Instance> ready, Map<String, Integer> restarts) {
        synchronized (this) {
            wanted = List.copyOf(ready);
            wantedRestarts = Map.copyOf(restarts);
        }
        schedule(settle);
    }

    /** Switches started because the instance set changed (the first epoch included). */
    public long switches() {
        return switches.get();
    }

    private synchronized void schedule(Duration delay) {
        if (pending != null) {
            pending.cancel(false);
        }
        try {
            pending = timer.schedule(this::reconcile, delay.toNanos(), TimeUnit.NANOSECONDS);
        } catch (RejectedExecutionException e) {
            log.debug("instance set not followed: shutting down");
        }
    }

    private synchronized void retryCommitsLater() {
        if (coordinator.pendingCommits() == 0 || (commitRetry != null && !commitRetry.isDone())) {
            return;
        }
        try {
            commitRetry = timer.schedule(this::retryCommits, retry.toNanos(), TimeUnit.NANOSECONDS);
        } catch (RejectedExecutionException e) {
            log.debug("missed COMMITs not retried: shutting down");
        }
    }

    private void retryCommits() {
        coordinator.retryMissedCommits().whenComplete((left, e) -> {
            if (e == null || !(e instanceof RejectedExecutionException)) {
                retryCommitsLater();
            }
        });
    }

    private synchronized void reconcile() {
        List<Instance> set = wanted;
        Map<String, Integer> restarts = wantedRestarts;
        if (switching || set == null) {
            return; // the switch's end looks again
        }
        if (coordinator.current() != null && coordinator.instances().equals(set)
                && coordinator.restarts().equals(restarts)) {
            return;
        }
        if (set.isEmpty()) {
            log.warn("no expert-service instance is ready: nothing to place on; {}", coordinator.current() == null
                    ? "no placement epoch is published yet (health stays NOT_SERVING)"
                    : "placement epoch " + coordinator.currentEpoch() + " stays current");
            return;
        }
        if (coordinator.replanRunning()) {
            schedule(retry);
            return;
        }
        try {
            int copies = Math.min(replicas, set.size());
            PlacementBudget budget = budgets.apply(set.size());
            switching = true;
            switches.incrementAndGet();
            coordinator.switchTo(set, restarts, budget, copies).whenComplete((o, e) -> done(e));
        } catch (IllegalStateException e) {
            switching = false;
            schedule(retry); // a Replan started meanwhile
        } catch (IllegalArgumentException e) {
            switching = false;
            failed.run();
            log.error("cannot place on the {} ready instances {}: {}; waiting for the set to change", set.size(),
                    set.stream().map(Instance::getId).toList(), e.getMessage());
        }
    }

    private synchronized void done(Throwable e) {
        switching = false;
        if (e != null) {
            failed.run();
            log.warn("placement on the instances {} not published ({}); trying again in {}", wanted == null ? List.of()
                    : wanted.stream().map(Instance::getId).toList(), e.getMessage(), retry);
            schedule(retry);
            return;
        }
        // The set may have changed while the switch ran.
        schedule(Duration.ZERO);
    }

    @Override
    public void close() {
        timer.shutdownNow();
    }
}
