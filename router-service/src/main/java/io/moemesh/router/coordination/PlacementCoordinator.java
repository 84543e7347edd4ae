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
import io.moemesh.service.placement.EvenPlacement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The router owns placement (issue 10, item 2): it plans an epoch, has every expert-service instance load its share
 * (LoadAssignment, all in parallel, each within the load timeout), and publishes the epoch only once all of them hold
 * it: it is recorded on disk ({@link EpochStore}: {@code <state-dir>/placement.json} among others), then sent to every
 * watcher. When an instance fails, the epoch is not published and the previous one stays current; that epoch number
 * is never used again for another assignment (an instance may already serve it): the next attempt reuses it only for
 * the very same assignment (a retry), else takes the next number.
 *
 * <p>Epoch 1 (at first start) is the even deal with exactly {@code replicas} replicas ({@link EvenPlacement}). A
 * restarted router continues at the epoch it had published when the instances are the same; otherwise it deals
 * evenly at the next epoch. Replans run one at a time on the replan executor, never on a caller's (gRPC) thread;
 * every replan publishes a new epoch, even when the plan is unchanged; with fewer than {@code minRoutesToPlan} tokens
 * in the route window a replan deals evenly ({@value #EVEN}) instead of planning from too little.
 *
 * <p>Caveat (expert-service semantics): an instance that loaded a failed epoch serves it and still serves the previous
 * one for its drain grace ({@code moemesh.expert.drain-grace}); a successful replan after the failure brings every
 * instance to one epoch again.
 */
public final class PlacementCoordinator implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(PlacementCoordinator.class);
    /** The planner name reported for the even deal. */
    public static final String EVEN = "even";

    /** What the coordinator needs to plan. */
    public record Settings(List<Instance> instances, ModelShape shape, boolean sharedExpert, int replicas,
                           PlacementBudget budget, String planner, int minRoutesToPlan, Duration loadTimeout) {
        public Settings {
            instances = List.copyOf(instances);
            if (instances.isEmpty()) {
                throw new IllegalArgumentException("a placement needs at least one expert-service instance");
            }
            Objects.requireNonNull(loadTimeout, "loadTimeout");
            PlacementPlanners.named(planner);
        }
    }

    private final Settings settings;
    private final RouteBook book;
    private final InstanceLoader loader;
    private final EpochStore store;
    private final ExecutorService replanExecutor;
    private final ExecutorService loadExecutor;
    private final LongSupplier nanoClock;
    private final AtomicBoolean replanning = new AtomicBoolean();
    private final List<Watch> watches = new CopyOnWriteArrayList<>();
    private final List<Consumer<ReplanOutcome>> publishListeners = new CopyOnWriteArrayList<>();
    private final Object publishing = new Object();
    private volatile Placement current;
    private long highestAttempted;
    /** The last epoch that was not published, while no other was attempted since (replan thread only). */
    private Placement lastFailed;

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
        this.loadExecutor = loadExecutor;
        this.nanoClock = nanoClock;
        this.highestAttempted = store.restoreHighestAttempted();
    }

    public Settings settings() {
        return settings;
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

    /** Called with every published epoch (startup's included), on the replan thread. */
    public void onPublished(Consumer<ReplanOutcome> listener) {
        publishListeners.add(listener);
    }

    /**
     * The first epoch of this run: the restored one when the last run published one for the same instances (no load:
     * they hold it), else the even deal at the next epoch, loaded onto every instance and published. Runs on the
     * replan executor.
     *
     * @throws ReplanAbortedException (in the future) when an instance fails to load it; call again to retry
     */
    public CompletableFuture<ReplanOutcome> start() {
        if (!replanning.compareAndSet(false, true)) {
            throw new IllegalStateException("a replan is running");
        }
        return run(() -> {
            long started = nanoClock.getAsLong();
            Placement restored = store.restorePlacement();
            if (restored != null && current == null && restored.getInstancesList().equals(settings.instances())
                    && fitsModel(restored)) {
                log.info("continuing at placement epoch {} (restored from {})", restored.getEpoch(), store.routerDir());
                highestAttempted = Math.max(highestAttempted, restored.getEpoch());
                return publish(restored, "restored", started);
            }
            if (restored != null && current == null) {
                highestAttempted = Math.max(highestAttempted, restored.getEpoch());
                log.info("the restored placement epoch {} is for other instances or another model: dealing evenly",
                        restored.getEpoch());
            }
            return loadAndPublish(evenDeal(nextEpoch()), EVEN, started);
        });
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
        if (!replanning.compareAndSet(false, true)) {
            throw new IllegalStateException("a replan is already running; try again once it has published");
        }
        return run(() -> {
            long started = nanoClock.getAsLong();
            long epoch = nextEpoch();
            RouteStats stats = book.stats(settings.minRoutesToPlan());
            if (stats == null) {
                log.info("replan: {} tokens in the route window, fewer than {}: dealing evenly", book.windowSize(),
                        settings.minRoutesToPlan());
                return loadAndPublish(evenDeal(epoch), EVEN, started);
            }
            List<String> ids = settings.instances().stream().map(Instance::getId).toList();
            io.moemesh.router.placement.Placement plan = chosen.plan(stats, settings.budget(), ids);
            Placement p = PlacementMessages.toProto(plan, epoch, settings.instances(), settings.sharedExpert() ? 1 : 0,
                    settings.replicas());
            return loadAndPublish(p, chosen.name(), started);
        });
    }

    /**
     * Watches publications: {@code watcher} gets the current placement now if its epoch is above {@code knownEpoch},
     * then every newer one, each epoch at most once and in increasing order.
     *
     * @return closes the watch
     */
    public AutoCloseable watch(long knownEpoch, Consumer<Placement> watcher) {
        Watch w = new Watch(watcher, knownEpoch);
        watches.add(w);
        Placement p = current;
        if (p != null) {
            w.offer(p);
        }
        return () -> watches.remove(w);
    }

    /** Open watches (count). */
    public int watchCount() {
        return watches.size();
    }

    @Override
    public void close() {
        replanExecutor.shutdownNow();
        loadExecutor.shutdownNow();
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
                    outcome = body.run();
                } catch (Throwable t) {
                    replanning.set(false);
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
        return Math.max(highestAttempted, currentEpoch()) + 1;
    }

    private Placement evenDeal(long epoch) {
        ModelShape s = settings.shape();
        return EvenPlacement.build(epoch, settings.instances(), s.layers(), s.experts(), settings.sharedExpert(),
                settings.replicas());
    }

    private boolean fitsModel(Placement p) {
        try {
            PlacementMessages.toDomain(p, settings.shape().layers(), settings.shape().experts());
            return p.getLayersCount() == settings.shape().layers();
        } catch (IllegalArgumentException e) {
            return false;
        }
    }

    private ReplanOutcome loadAndPublish(Placement planned, String planner, long started) throws InterruptedException {
        // The same assignment as the last failed attempt keeps its epoch (an instance that loaded it accepts the same
        // epoch with the same experts again): retries while an instance is down do not climb past the expert-services'
        // max-epoch-jump.
        Placement p = lastFailed != null && lastFailed.toBuilder().setEpoch(0).build()
                .equals(planned.toBuilder().setEpoch(0).build()) ? lastFailed : planned;
        long epoch = p.getEpoch();
        highestAttempted = epoch;
        store.recordAttempt(epoch);
        List<Future<?>> loads = new ArrayList<>();
        for (Instance in : p.getInstancesList()) {
            List<AssignedExpert> share = PlacementMessages.assignment(p, in.getId());
            loads.add(loadExecutor.submit(() -> loader.load(in, epoch, share, settings.loadTimeout())));
        }
        long deadline = System.nanoTime() + settings.loadTimeout().toNanos() + TimeUnit.SECONDS.toNanos(1);
        List<String> failures = new ArrayList<>();
        Throwable firstCause = null;
        for (int i = 0; i < loads.size(); i++) {
            Instance in = p.getInstances(i);
            try {
                loads.get(i).get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            } catch (ExecutionException e) {
                failures.add(in.getId() + " (" + in.getEndpoint() + "): " + e.getCause().getMessage());
                firstCause = firstCause == null ? e.getCause() : firstCause;
            } catch (TimeoutException e) {
                loads.get(i).cancel(true);
                failures.add(in.getId() + " (" + in.getEndpoint() + "): no answer within " + settings.loadTimeout());
                firstCause = firstCause == null ? e : firstCause;
            }
        }
        lastFailed = failures.isEmpty() ? null : p;
        if (!failures.isEmpty()) {
            String kept = current == null ? "no epoch is published yet" : "epoch " + currentEpoch() + " stays current";
            log.warn("placement epoch {} not published: {} failed to load it; {}", epoch, failures, kept);
            throw new ReplanAbortedException("placement epoch " + epoch + " was not published: "
                    + String.join("; ", failures) + " failed LoadAssignment; " + kept, firstCause);
        }
        return publish(p, planner, started);
    }

    private ReplanOutcome publish(Placement p, String planner, long started) {
        RouteTrace window = book.windowTrace();
        PlacementEval score = null;
        if (!window.tokens().isEmpty()) {
            score = PlacementEval.score(PlacementMessages.toDomain(p, settings.shape().layers(),
                    settings.shape().experts()), window);
        }
        synchronized (publishing) {
            store.recordPublished(p);
            current = p;
        }
        ReplanOutcome outcome = new ReplanOutcome(p, planner, score, window.tokens().size(),
                nanoClock.getAsLong() - started);
        log.info("published placement epoch {} ({}, {} instances{})", p.getEpoch(), planner, p.getInstancesCount(),
                score == null ? "" : String.format(", fan-out %.3f, load max/mean %.3f on %d routes", score.fanOut(),
                        score.loadMaxOverMean(), window.tokens().size()));
        for (Watch w : watches) {
            w.offer(p);
        }
        for (Consumer<ReplanOutcome> l : publishListeners) {
            l.accept(outcome);
        }
        return outcome;
    }

    /** One watcher: epochs strictly increasing, one delivery at a time. */
    private static final class Watch {
        private final Consumer<Placement> sink;
        private long sent;

        Watch(Consumer<Placement> sink, long known) {
            this.sink = sink;
            this.sent = known;
        }

        synchronized void offer(Placement p) {
            if (Long.compareUnsigned(p.getEpoch(), sent) > 0) {
                sent = p.getEpoch();
                sink.accept(p);
            }
        }
    }
}
