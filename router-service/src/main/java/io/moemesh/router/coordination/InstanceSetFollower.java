package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.Instance;
import io.moemesh.router.placement.PlacementBudget;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.IntFunction;
import java.util.function.Supplier;
import java.util.stream.Collectors;
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
 *
 * <p>With {@code leaveOutFailing} (discovered pods) the set placed on leaves out the instances in the coordinator's
 * {@link Quarantine} (those that kept failing their PREPARE or a COMMIT retry): one bad pod must not keep the router
 * from re-placing the experts of a pod that died. When a quarantine ends the set is placed on again with that
 * instance. Without it (the configured instances, which may still be starting when the router does) every instance
 * is waited for. An epoch seen elsewhere above the
 * current one ({@link PlacementCoordinator#isBehind}) is placed on again too, with the same set.
 *
 * <p>{@link #close} stops it; {@link #start} (after a close: a Spring context stopped and started again) takes a new
 * timer from the supplier, so it follows again.
 */
public final class InstanceSetFollower implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(InstanceSetFollower.class);

    private final PlacementCoordinator coordinator;
    private final IntFunction<PlacementBudget> budgets;
    private final int replicas;
    private final Duration settle;
    private final Duration retry;
    private final Supplier<ScheduledExecutorService> timers;
    /** The settle timer's thread; replaced by {@link #start} after {@link #close}. Guarded by this. */
    private ScheduledExecutorService timer;
    private final Runnable failed;
    private final AtomicLong switches = new AtomicLong();
    /** The set to place on: the latest delivered (timer thread and discovery thread). */
    private volatile List<Instance> wanted;
    /** The container restart counts of {@link #wanted}, by id (empty when discovery knows none). */
    private volatile Map<String, Integer> wantedRestarts = Map.of();
    private ScheduledFuture<?> pending;
    /** The next retry of missed COMMITs, while any are pending. */
    private ScheduledFuture<?> commitRetry;
    /** The next look at the set once a quarantine ends, while an instance of it is quarantined. */
    private ScheduledFuture<?> releaseCheck;
    private boolean switching;
    /** Place on the set at a new epoch even when it is placed already ({@link #placeAgain}), until one publishes. */
    private boolean again;

    /**
     * @param budgets  the planner's budget for a number of instances (may refuse one with IllegalArgumentException)
     * @param replicas the configured replicas; a smaller set gets one copy per instance at most
     * @param settle   how long a set must stay unchanged before it is placed on
     * @param retry    pause before a failed switch is tried again
     * @param timers   a new one-thread executor each time (first at once, then at each {@link #start} after a
     *                 {@link #close}): the settle timer and the switches' bookkeeping run there
     * @param failed   called when a switch did not publish (metrics)
     * @param leaveOutFailing whether instances that keep failing are left out for a while ({@link Quarantine}: it is
     *                 enabled)
     */
    public InstanceSetFollower(PlacementCoordinator coordinator, IntFunction<PlacementBudget> budgets, int replicas,
                               Duration settle, Duration retry, Supplier<ScheduledExecutorService> timers,
                               Runnable failed, boolean leaveOutFailing) {
        this.coordinator = coordinator;
        this.budgets = budgets;
        this.replicas = replicas;
        this.settle = settle;
        this.retry = retry;
        this.timers = timers;
        this.timer = timers.get();
        this.failed = failed;
        // Every published epoch may leave COMMITs missed (a switch's, a Replan's, the restored one's): they are
        // retried every retry pause until none is left, so a pod that missed one does not wait for the next replan
        // (none may come) to be committed and marked placed.
        coordinator.onCommitted((p, ids, restarts) -> retryCommitsLater());
        // An instance quarantined (by a switch or a Replan) changes the set to place on; an epoch seen elsewhere
        // above the current one must be placed on again above it.
        if (leaveOutFailing) {
            coordinator.quarantine().enable();
        }
        coordinator.quarantine().onChange(() -> schedule(Duration.ZERO));
        coordinator.onBehind(() -> schedule(Duration.ZERO));
    }

    /**
     * Follows again after {@link #close} (a no-op while it follows): a new timer, the set delivered last looked at
     * again, and the missed COMMITs retried.
     */
    public synchronized void start() {
        if (!timer.isShutdown()) {
            return;
        }
        timer = timers.get();
        // Their tasks went with the old timer, which never completes them.
        pending = null;
        commitRetry = null;
        releaseCheck = null;
        schedule(Duration.ZERO);
        retryCommitsLater();
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
        // An instance that left the set and comes back gets a new chance.
        coordinator.quarantine().retain(ready.stream().map(Instance::getId).collect(Collectors.toSet()));
        schedule(settle);
    }

    /**
     * Places on the set again at a new epoch, even when the current epoch is for it (the placement lease taken after
     * another router may have placed: the gateways may follow that router's epochs), retried until one publishes.
     */
    public synchronized void placeAgain() {
        again = true;
        schedule(Duration.ZERO);
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
        List<Instance> ready = wanted;
        if (switching || ready == null) {
            return; // the switch's end looks again
        }
        List<Instance> set = coordinator.quarantine().admit(ready);
        Set<String> ids = set.stream().map(Instance::getId).collect(Collectors.toSet());
        Map<String, Integer> restarts = new HashMap<>(wantedRestarts);
        restarts.keySet().retainAll(ids);
        lookAgainAfterQuarantine(ready);
        if (coordinator.current() != null && coordinator.instances().equals(set)
                && coordinator.restarts().equals(restarts) && !coordinator.isBehind() && !again) {
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

    /** While an instance of {@code ready} is quarantined, looks at the set again when the first quarantine ends. */
    private void lookAgainAfterQuarantine(List<Instance> ready) {
        Duration left = coordinator.quarantine().nextRelease(ready.stream().map(Instance::getId)
                .collect(Collectors.toSet()));
        if (left == null || (releaseCheck != null && !releaseCheck.isDone())) {
            return;
        }
        try {
            releaseCheck = timer.schedule(() -> schedule(Duration.ZERO), left.toNanos() + 1, TimeUnit.NANOSECONDS);
        } catch (RejectedExecutionException e) {
            log.debug("quarantine end not followed: shutting down");
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
        again = false;
        // The set may have changed while the switch ran.
        schedule(Duration.ZERO);
    }

    @Override
    public synchronized void close() {
        timer.shutdownNow();
    }
}
