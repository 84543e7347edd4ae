package io.moemesh.router.metrics;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.MultiGauge;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.router.coordination.PlacementCoordinator;
import io.moemesh.router.coordination.PlacementMessages;
import io.moemesh.router.coordination.ReplanOutcome;
import io.moemesh.router.reports.RouteBook;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The router's metrics (docs/metrics.md, "Router service"). Label cardinality is bounded by the instance count: the
 * per-expert load is summarised (hottest expert's share, max/mean) rather than labelled per (layer, expert), which
 * would be layers × experts series (7,680 for 256 experts × 30 layers) that no dashboard reads one by one.
 */
public final class RouterMetrics {
    private final RouteBook book;
    private final PlacementCoordinator coordinator;
    private final Timer replan;
    private final Counter replanFailures;
    private final MultiGauge instanceLoad;
    private volatile LoadEstimate estimate = LoadEstimate.EMPTY;
    private volatile long estimatedAt = Long.MIN_VALUE;

    private record LoadEstimate(long epoch, double[] instanceShare, double hottestShare, double maxOverMean) {
        static final LoadEstimate EMPTY = new LoadEstimate(-1, new double[0], 0, 0);
    }

    public RouterMetrics(MeterRegistry registry, RouteBook book, PlacementCoordinator coordinator) {
        this.book = book;
        this.coordinator = coordinator;
        Gauge.builder("moemesh.router.placement.epoch", coordinator, PlacementCoordinator::currentEpoch)
                .description("The placement epoch the router published last (0 = none yet)").register(registry);
        replan = Timer.builder("moemesh.router.replan").description("From a replan's start to its publication "
                + "(planning + LoadAssignment PREPARE on every instance); startup's first epoch included")
                .register(registry);
        replanFailures = Counter.builder("moemesh.router.replan.failures").description("Replans not published "
                + "because an instance failed to load the epoch").register(registry);
        FunctionCounter.builder("moemesh.router.commit.failures", coordinator, PlacementCoordinator::commitFailures)
                .description("COMMITs of a published epoch an instance failed (retries included)").register(registry);
        FunctionCounter.builder("moemesh.router.epochs.unconfirmed", coordinator, PlacementCoordinator::unconfirmedEpochs)
                .description("Placement epochs gateways sent that no instance holds, ignored (each logged as an "
                        + "error naming the gateway)").register(registry);
        Gauge.builder("moemesh.router.commit.pending", coordinator, PlacementCoordinator::pendingCommits)
                .description("Instances that missed the COMMIT of a published epoch (they answer the epoch before "
                        + "it too until the retry)").register(registry);
        Gauge.builder("moemesh.router.instances.quarantined", coordinator, c -> c.quarantine().size())
                .description("Expert-service instances left out of placements for now: they kept failing their "
                        + "LoadAssignment (PREPARE, or a COMMIT retry); each is tried again when its quarantine ends")
                .register(registry);
        coordinator.onPublished(this::published);
        Gauge.builder("moemesh.router.prediction.recall", book, b -> b.recall().recallK()).tag("guesses", "k")
                .tag("ahead", "1").description("Online next-layer recall of the predictor with k guesses").register(registry);
        Gauge.builder("moemesh.router.prediction.recall", book, b -> b.recall().recall2K()).tag("guesses", "2k")
                .tag("ahead", "1").description("Online next-layer recall of the predictor with 2k guesses")
                .register(registry);
        FunctionCounter.builder("moemesh.router.routes.ingested", book, RouteBook::ingested)
                .description("Reported token routes ingested").register(registry);
        FunctionCounter.builder("moemesh.router.routes.dropped", book, RouteBook::dropped)
                .description("Reported token routes dropped (their message was malformed)").register(registry);
        Gauge.builder("moemesh.router.routes.window", book, RouteBook::windowSize)
                .description("Tokens in the route window a replan plans from").register(registry);
        // One series per instance of the current epoch: the rows follow the instance set when it changes
        // (discovery), so a gone instance's series disappears.
        instanceLoad = MultiGauge.builder("moemesh.router.instance.load").description("Estimated share of the "
                + "window's (token, expert) pairs this instance serves under the current placement (replicas share "
                + "evenly)").register(registry);
        instanceRows(coordinator.instances());
        Gauge.builder("moemesh.router.expert.load.hottest.share", this, m -> m.estimate().hottestShare())
                .description("The hottest (layer, expert)'s share of its layer's pairs in the window").register(registry);
        Gauge.builder("moemesh.router.expert.load.max.over.mean", this, m -> m.estimate().maxOverMean())
                .description("Mean over layers of the hottest expert's pairs over the mean expert's").register(registry);
    }

    /** Recorded by the caller of a replan that failed to publish. */
    public void replanFailed() {
        replanFailures.increment();
    }

    private void published(ReplanOutcome o) {
        replan.record(o.publishNanos(), TimeUnit.NANOSECONDS);
        instanceRows(o.placement().getInstancesList());
    }

    private void instanceRows(List<Instance> instances) {
        List<MultiGauge.Row<?>> rows = new ArrayList<>();
        for (int i = 0; i < instances.size(); i++) {
            int index = i;
            String id = instances.get(i).getId();
            rows.add(MultiGauge.Row.of(Tags.of("instance", id), this, m -> m.share(id, index)));
        }
        instanceLoad.register(rows, true);
    }

    /** The estimated share of instance {@code id}, at {@code index} in the current placement. */
    private double share(String id, int index) {
        Placement p = coordinator.current();
        double[] share = estimate().instanceShare();
        return p != null && index < share.length && index < p.getInstancesCount()
                && p.getInstances(index).getId().equals(id) ? share[index] : 0;
    }

    /** Recomputed at most once a second (one scrape reads several gauges). */
    private LoadEstimate estimate() {
        long now = System.nanoTime();
        LoadEstimate e = estimate;
        Placement p = coordinator.current();
        if (now - estimatedAt < TimeUnit.SECONDS.toNanos(1) && (p == null || e.epoch() == p.getEpoch())) {
            return e;
        }
        long[][] load = book.expertLoad();
        int layers = load.length;
        int experts = layers == 0 ? 0 : load[0].length;
        double[] share = new double[p == null ? 0 : p.getInstancesCount()];
        double hottest = 0;
        double ratio = 0;
        long total = 0;
        int[][][] holders = p == null ? null : PlacementMessages.toDomain(p, layers, experts).holders();
        for (int l = 0; l < layers; l++) {
            long sum = 0;
            long max = 0;
            for (int x = 0; x < experts; x++) {
                sum += load[l][x];
                max = Math.max(max, load[l][x]);
                if (holders != null) {
                    for (int i : holders[l][x]) {
                        share[i] += (double) load[l][x] / holders[l][x].length;
                    }
                }
            }
            total += sum;
            if (sum > 0) {
                hottest = Math.max(hottest, (double) max / sum);
                ratio += (double) max / ((double) sum / experts) / layers;
            }
        }
        for (int i = 0; i < share.length; i++) {
            share[i] = total == 0 ? 0 : share[i] / total;
        }
        e = new LoadEstimate(p == null ? -1 : p.getEpoch(), share, hottest, ratio);
        estimate = e;
        estimatedAt = now;
        return e;
    }
}
