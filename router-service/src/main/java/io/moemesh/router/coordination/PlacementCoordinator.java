package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.router.placement.PlacementBudget;
import io.moemesh.router.placement.PlacementEval;
import io.moemesh.router.placement.PlacementPlanner;
import io.moemesh.router.placement.PlacementPlanners;
import io.moemesh.router.placement.RouteStats;
import io.moemesh.router.prediction.ModelShape;
import io.moemesh.router.reports.RouteBook;
import io.moemesh.router.trace.RouteTrace;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The router owns placement (issue 10, item 2): it plans an epoch and switches every expert-service instance to it in
 * two phases (expert.proto, LoadAssignmentRequest stages). PREPARE on every instance (all in parallel, each within the
 * load timeout): each loads its share next to the epoch it serves and answers requests at both. Only once all of them
 * prepared it is the epoch published: recorded on disk ({@link EpochStore}: {@code <state-dir>/placement.json} among
 * others), then sent to every watcher, so gateways may dispatch under it at once. Then COMMIT on every instance: the
 * new epoch becomes the served one and the old one drains for the instance's grace ({@code moemesh.expert.drain-grace}),
 * counted from the commit, after the publication. An instance that misses the COMMIT still answers both epochs (safe);
 * the miss is logged and counted ({@link #commitFailures()}) and the COMMIT retried before the next PREPARE.
 *
 * <p>When an instance fails to prepare, the instances that prepared the epoch are told to ABORT, nothing is
 * published, and the previous epoch stays current and served everywhere with no drain deadline: a failed replan
 * never breaks the mesh. The next attempt reuses the unpublished number ({@link EpochAttempts}).
 *
 * <p>Epoch 1 (at first start) is the even deal with exactly {@code replicas} replicas
 * ({@link PlacementMessages#evenDeal}: the copies of an expert in distinct failure domains where they allow), switched
 * the same way (instances that already serve it from their placement file answer PREPARE and COMMIT as no-ops). A
 * restarted router continues at the epoch it had published when the instances are the same (no PREPARE: they hold it;
 * a COMMIT to each, a no-op where it was committed); otherwise it deals evenly at the next epoch. Replans run one at a
 * time on the replan executor, never on a caller's (gRPC) thread; every replan publishes a new epoch, even when the plan
 * is unchanged; with fewer than {@code minRoutesToPlan} tokens in the route window a replan deals evenly ({@value #EVEN})
 * instead of planning from too little. A planned epoch keeps {@code replicas} copies of every expert too (the planner
 * spends only the slots left over by load), and the shared expert's copies count within the slots.
 *
 * <p>The instance set may change ({@link #switchTo}, issue 12 item 3: the router follows the READY expert-service pods
 * in Kubernetes): the next epoch is planned for exactly the new set and PREPAREd on its instances only (a gone instance
 * is not asked); until it is published, the previous epoch and its instances stay current, and a Replan plans for them.
 * Instances that keep failing attempts go to the {@link Quarantine}, which the follower leaves out for a while.
 * Every epoch seen elsewhere raises the floor ({@link EpochFloor}; a gateway's only once the instances confirm it,
 * {@link EpochsElsewhere}); one above the current epoch makes {@link #isBehind()} true and tells the
 * {@link #onBehind} listeners (the follower publishes again, above it).
 */
public final class PlacementCoordinator implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(PlacementCoordinator.class);
    /** The planner name reported for the even deal. */
    public static final String EVEN = "even";

    /**
     * What the coordinator needs to plan.
     *
     * @param instances the configured instances {@link #start} places on; empty when they are discovered (then only
     *                  {@link #switchTo} places, with the instances and budget it is given)
     * @param replicas  copies of every expert in the even deal, the least in a planned one (at most the instances)
     * @param budget    the planner's budget for {@code instances} (any budget when they are empty)
     */
    public record Settings(List<Instance> instances, ModelShape shape, boolean sharedExpert, int replicas,
                           PlacementBudget budget, String planner, int minRoutesToPlan, Duration loadTimeout) {
        public Settings {
            instances = List.copyOf(instances);
            Objects.requireNonNull(loadTimeout, "loadTimeout");
            PlacementPlanners.named(planner);
        }
    }

    /**
     * The instances an epoch is planned for, with the planner's budget and the replicas for them, and their container
     * restart counts when discovery knows them (by id; empty otherwise).
     */
    private record Membership(List<Instance> instances, PlacementBudget budget, int replicas,
                              Map<String, Integer> restarts) {
    }


    private final Settings settings;
    private final RouteBook book;
    private final InstanceLoader loader;
    private final EpochStore store;
    private final ExecutorService replanExecutor;
    private final ParallelLoads loads;
    private final LongSupplier nanoClock;
    /** Builds what an epoch places where (the even deal or a planner's plan). */
    private final EpochPlans plans;
    private final AtomicBoolean replanning = new AtomicBoolean();
    private final Publications publications = new Publications();
    private final Object publishing = new Object();
    private volatile Placement current;
    /** The instances of the current epoch (before the first: the configured ones). */
    private volatile Membership members;
    /** The epoch numbers attempted, and the PREPARE phase (replan thread only). */
    private final EpochAttempts attempts;
    /** Instances that missed the COMMIT of a published epoch, with that epoch (written on the replan thread). */
    private final PendingCommits commits;
    /** Instances that keep failing attempts. */
    private final Quarantine quarantine = new Quarantine();
    /** Epochs seen outside this coordinator: the floor, gateways' hints and their check. */
    private final EpochsElsewhere elsewhere;
    private final EpochFloor floor;

    /**
     * @param replanExecutor one thread: plans and loads run there, one at a time
     * @param loadExecutor   runs the LoadAssignment calls of one epoch in parallel (at least one thread per instance
     *                       for full parallelism)
     */
    public PlacementCoordinator(Settings settings, RouteBook book, InstanceLoader loader, EpochStore store,
                                ExecutorService replanExecutor, ExecutorService loadExecutor, LongSupplier nanoClock) {
        this.settings = settings;
        this.book = book;
        this.loader = loader;
        this.store = store;
        this.replanExecutor = replanExecutor;
        this.loads = new ParallelLoads(loadExecutor, settings.loadTimeout());
        this.commits = new PendingCommits(loader, loads, settings.loadTimeout());
        this.nanoClock = nanoClock;
        this.plans = new EpochPlans(settings.shape(), settings.sharedExpert());
        this.attempts = new EpochAttempts(store, loader, loads, settings.loadTimeout());
        this.elsewhere = new EpochsElsewhere(replanExecutor, attempts, () -> current, () -> members.instances(),
                publications::behind);
        this.floor = elsewhere.floor();
        this.members = new Membership(settings.instances(), settings.budget(), settings.replicas(), Map.of());
    }

    /** The instances of the current epoch; before the first epoch, the configured ones (empty when discovered). */
    public List<Instance> instances() {
        return members.instances();
    }

    /** The container restart counts the current epoch's instances were placed with, by id (empty when unknown). */
    public Map<String, Integer> restarts() {
        return members.restarts();
    }

    public Settings settings() {
        return settings;
    }

    /** The instances that keep failing attempts, left out of the follower's switches for a while. */
    public Quarantine quarantine() {
        return quarantine;
    }

    /** The current published placement, or null before the first publication. */
    public Placement current() {
        return current;
    }

    public long currentEpoch() {
        Placement p = current;
        return p == null ? 0 : p.getEpoch();
    }

    public boolean replanRunning() {
        return replanning.get();
    }

    /** COMMITs of published epochs that an instance failed (retries included), since the start. */
    public long commitFailures() {
        return commits.failures();
    }

    /** Instances that missed the COMMIT of a published epoch and still answer the epoch before it too (count). */
    public int pendingCommits() {
        return commits.size();
    }

    /**
     * Retries the missed COMMITs on the replan executor (a replan does too, but none may come with a stable instance
     * set and no periodic replan). An instance that commits the current epoch now is reported to the
     * {@link #onCommitted} listeners with the others (the readiness gate then marks it placed); a failure keeps it
     * pending.
     *
     * @return the COMMITs still pending afterwards
     */
    public CompletableFuture<Integer> retryMissedCommits() {
        CompletableFuture<Integer> f = new CompletableFuture<>();
        try {
            replanExecutor.execute(() -> {
                try {
                    Placement p = current;
                    List<String> ids = commits.retryCurrent(p, members.instances());
                    if (ids != null) {
                        committed(p, ids);
                    }
                    f.complete(commits.size());
                } catch (Throwable t) {
                    f.completeExceptionally(t);
                }
            });
        } catch (RejectedExecutionException e) {
            f.completeExceptionally(e); // closed
        }
        return f;
    }

    /** Called with every published epoch (startup's included), on the replan thread. */
    public void onPublished(Consumer<ReplanOutcome> listener) {
        publications.onPublished(listener);
    }

    /**
     * Called once the COMMIT of every published epoch has been sent, with the epoch and the ids of the instances that
     * committed it (they serve their share at that epoch; the others missed the COMMIT), on the replan thread.
     */
    public void onCommitted(CommitListener listener) {
        publications.onCommitted(listener);
    }

    /**
     * The first epoch of this run: the restored one when the last run published one for the same instances (a PREPARE
     * to each, a no-op where it is served, then a COMMIT to each), else the even deal at the next epoch, prepared on every instance,
     * published and committed. Runs on the replan executor.
     *
     * @throws ReplanAbortedException (in the future) when an instance fails to load it; call again to retry
     */
    public CompletableFuture<ReplanOutcome> start() {
        if (settings.instances().isEmpty()) {
            throw new IllegalStateException("no expert-service instance is configured: the instances are discovered, "
                    + "so switchTo places on them");
        }
        floor.checkNotHeld();
        if (!replanning.compareAndSet(false, true)) {
            throw new IllegalStateException("a replan is running");
        }
        Membership m = new Membership(settings.instances(), settings.budget(), settings.replicas(), Map.of());
        return run(() -> firstEpoch(m));
    }

    /**
     * Places on a new instance set in the background. Before the first epoch this is {@link #start} for these
     * instances; after it, the next epoch is planned for exactly them (as a replan, with {@code replicas} copies),
     * PREPAREd on each of them (not on instances that left), published and committed; until then the current epoch
     * stays current, with its instances.
     *
     * @param budget   the planner's budget for {@code instances.size()} instances
     * @param replicas the copies of every expert, in [1, instances.size()]
     * @throws IllegalArgumentException when {@code instances} is empty or replicas is out of range
     * @throws IllegalStateException    while a replan runs
     */
    public CompletableFuture<ReplanOutcome> switchTo(List<Instance> instances, PlacementBudget budget, int replicas) {
        return switchTo(instances, Map.of(), budget, replicas);
    }

    /** {@link #switchTo(List, PlacementBudget, int)} with the instances' container restart counts, by id. */
    public CompletableFuture<ReplanOutcome> switchTo(List<Instance> instances, Map<String, Integer> restarts,
                                                     PlacementBudget budget, int replicas) {
        if (instances.isEmpty()) {
            throw new IllegalArgumentException("a placement needs at least one expert-service instance");
        }
        if (replicas < 1 || replicas > instances.size()) {
            throw new IllegalArgumentException("replicas must be in [1, " + instances.size() + "], got " + replicas);
        }
        floor.checkNotHeld();
        if (!replanning.compareAndSet(false, true)) {
            throw new IllegalStateException("a replan is already running; try again once it has published");
        }
        Membership m = new Membership(List.copyOf(instances), budget, replicas, Map.copyOf(restarts));
        return run(() -> {
            if (current == null) {
                return firstEpoch(m);
            }
            log.info("the instances changed to {}: placing on them", m.instances().stream().map(Instance::getId).toList());
            return planned(PlacementPlanners.named(settings.planner()), m);
        });
    }

    private ReplanOutcome firstEpoch(Membership m) throws InterruptedException {
        long started = nanoClock.getAsLong();
        elsewhere.checkPending(m.instances());
        Placement restored = current == null ? attempts.restore(store.restorePlacement(), m.instances(), plans,
                floor.highestElsewhere()) : null;
        if (restored != null) {
            ReplanOutcome outcome = publish(restored, "restored", started, m);
            // The last run may have stopped between publishing and committing: a COMMIT of the served epoch is a
            // no-op, so every instance is told again (nothing is loaded).
            committed(restored, commits.commitEverywhere(restored));
            return outcome;
        }
        long seen = floor.highestElsewhere();
        if (seen > 0 && attempts.servedAsIs(evenDeal(seen, m), m.instances())) {
            // moemesh up: the instances and gateways started from the same placement file, whose epoch is this deal.
            return loadAndPublish(evenDeal(seen, m), EVEN, started, m);
        }
        Placement deal = evenDeal(nextEpoch(), m);
        long epoch = attempts.firstEpoch(deal, m.instances(), currentEpoch());
        return loadAndPublish(epoch == deal.getEpoch() ? deal : evenDeal(epoch, m), EVEN, started, m);
    }

    /** What must be known before placing: the highest epoch seen elsewhere, and the holds on placing. */
    public EpochFloor floor() {
        return floor;
    }

    /** {@link EpochFloor#raise} with an epoch a previous router published (the ConfigMap's). */
    public void raiseEpochFloor(long epoch) {
        floor.raise(epoch, "published before this run");
    }

    /** Gateway epochs ignored because no instance confirmed them ({@link EpochsElsewhere}), since the start. */
    public long unconfirmedEpochs() {
        return elsewhere.unconfirmed();
    }

    /** Whether an epoch seen elsewhere is above the current one (then the next epoch must be published). */
    public boolean isBehind() {
        return elsewhere.isBehind();
    }

    /** Called on the replan thread when an epoch seen elsewhere turns out above the current one. */
    public void onBehind(Runnable listener) {
        publications.onBehind(listener);
    }

    /**
     * Plans and publishes the next epoch in the background.
     *
     * @param planner a planner name, or null/blank for the configured one
     * @throws IllegalArgumentException for an unknown planner (listing the names)
     * @throws IllegalStateException    while a replan runs, or before the first epoch is published
     */
    public CompletableFuture<ReplanOutcome> replan(String planner) {
        String name = planner == null || planner.isBlank() ? settings.planner() : planner;
        PlacementPlanner chosen;
        try {
            chosen = PlacementPlanners.named(name);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("planner: must be one of " + String.join(", ", PlacementPlanners.names())
                    + ", got \"" + name + "\"", e);
        }
        if (current == null) {
            throw new IllegalStateException("no placement epoch is published yet (the router is still loading epoch 1"
                    + " onto the expert-services); try again once it is");
        }
        floor.checkNotHeld();
        if (!replanning.compareAndSet(false, true)) {
            throw new IllegalStateException("a replan is already running; try again once it has published");
        }
        Membership m = members;
        return run(() -> planned(chosen, m));
    }

    /** The next epoch for {@code m}: planned by {@code chosen}, or the even deal with too few routes. */
    private ReplanOutcome planned(PlacementPlanner chosen, Membership m) throws InterruptedException {
        long started = nanoClock.getAsLong();
        long epoch = nextEpoch();
        RouteStats stats = book.stats(settings.minRoutesToPlan());
        if (stats == null) {
            log.info("replan: {} tokens in the route window, fewer than {}: dealing evenly", book.windowSize(),
                    settings.minRoutesToPlan());
            return loadAndPublish(evenDeal(epoch, m), EVEN, started, m);
        }
        Placement p = plans.planned(chosen, stats, epoch, m.instances(), m.budget(), m.replicas());
        return loadAndPublish(p, chosen.name(), started, m);
    }

    /**
     * Watches publications: {@code watcher} gets the current placement now if its epoch is above {@code knownEpoch},
     * then every newer one, each epoch at most once and in increasing order. {@code knownEpoch} is a hint
     * ({@link EpochFloor#hint}: it raises the floor once an instance confirms it); {@code who} names the watcher in
     * the log.
     *
     * @return closes the watch
     */
    public AutoCloseable watch(long knownEpoch, String who, Consumer<Placement> watcher) {
        floor.hint(knownEpoch, who + "'s WatchPlacement known_epoch");
        return publications.watch(knownEpoch, watcher, current);
    }

    /** Open watches (count). */
    public int watchCount() {
        return publications.watchCount();
    }

    @Override
    public void close() {
        replanExecutor.shutdownNow();
        loads.close();
    }

    private interface Body {
        ReplanOutcome run() throws Exception;
    }

    private CompletableFuture<ReplanOutcome> run(Body body) {
        CompletableFuture<ReplanOutcome> f = new CompletableFuture<>();
        try {
            replanExecutor.execute(() -> {
                // The flag is cleared before the future completes: whoever is told the replan is over may start another.
                ReplanOutcome outcome;
                try {
                    floor.checkNotHeld(); // a hold that began while this waited in the queue
                    outcome = body.run();
                } catch (Throwable t) {
                    replanning.set(false);
                    if (t instanceof ReplanAbortedException a) {
                        quarantine.failed(a.failedInstances());
                    }
                    f.completeExceptionally(t);
                    return;
                }
                replanning.set(false);
                f.complete(outcome);
            });
        } catch (RuntimeException e) {
            replanning.set(false);
            throw e;
        }
        return f;
    }

    private long nextEpoch() {
        return attempts.next(currentEpoch());
    }

    private Placement evenDeal(long epoch, Membership m) {
        return plans.even(epoch, m.instances(), m.replicas());
    }

    /**
     * The two-phase switch: PREPARE on every instance (each then answers both the current and the new epoch), publish
     * only when all of them prepared it, then COMMIT on every instance. When one fails to prepare, the others are told
     * to ABORT and nothing is published: the current epoch stays served everywhere, with no drain deadline.
     */
    private ReplanOutcome loadAndPublish(Placement p, String planner, long started, Membership m)
            throws InterruptedException {
        commits.retry(m.instances(), currentEpoch());
        String kept = current == null ? "no epoch is published yet" : "epoch " + currentEpoch() + " stays current";
        attempts.prepareEverywhere(p, kept);
        if (floor.held()) {
            // e.g. the lease lost while preparing: not published, and ABORTed so the next holder finds it nowhere
            attempts.abandon(p, "placement went on hold while it was prepared (" + floor.holdReasons() + ")");
        }
        ReplanOutcome outcome = publish(p, planner, started, m);
        committed(p, commits.commitEverywhere(p));
        return outcome;
    }

    private void committed(Placement p, List<String> ids) {
        if (p == current) {
            commits.committedCurrent(ids);
        }
        publications.committed(p, ids, members.restarts());
    }

    static String describe(Instance in) {
        return in.getId() + " (" + in.getEndpoint() + ")";
    }

    private ReplanOutcome publish(Placement p, String planner, long started, Membership m) {
        RouteTrace window = book.windowTrace();
        PlacementEval score = plans.score(p, window);
        synchronized (publishing) {
            store.recordPublished(p);
            attempts.published(p);
            members = m;
            current = p;
        }
        quarantine.placed(p.getInstancesList().stream().map(Instance::getId).toList());
        loader.placingOn(p.getInstancesList());
        ReplanOutcome outcome = new ReplanOutcome(p, planner, score, window.tokens().size(),
                nanoClock.getAsLong() - started);
        log.info("published placement epoch {} ({}, {} instances{})", p.getEpoch(), planner, p.getInstancesCount(),
                score == null ? "" : String.format(", fan-out %.3f, load max/mean %.3f on %d routes", score.fanOut(),
                        score.loadMaxOverMean(), window.tokens().size()));
        publications.published(outcome);
        return outcome;
    }
}
