package io.moemesh.router.config;

import io.moemesh.router.coordination.EpochFloor;
import io.moemesh.router.coordination.EpochStore;
import io.moemesh.router.coordination.InstanceSetFollower;
import io.moemesh.router.coordination.PlacementCoordinator;
import io.moemesh.router.grpc.RouterGrpcService;
import io.moemesh.router.kubernetes.RouterLease;
import io.moemesh.router.metrics.RouterMetrics;
import io.moemesh.router.reports.RouteBook;
import io.moemesh.router.reports.RouteBookSnapshots;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;

/**
 * What runs beside the gRPC server: following the instance set ({@link InstanceSetFollower}: the first epoch, retried
 * every {@code startup-retry} while instances are unreachable, and a new epoch whenever discovery finds the ready set
 * changed; gRPC health turns SERVING once the first epoch is published), snapshots of the route statistics every
 * {@code snapshot-period} and at shutdown, and replans every {@code auto-replan-period} when configured (off by
 * default). Starts after the gRPC server and stops before it: first gRPC health turns NOT_SERVING (and stays so
 * for the rest of the stop, whatever is published meanwhile), so gateways stop routing here before their streams
 * are refused; then the service refuses new WatchPlacement and ReportRoutes streams and ends the open ones and
 * Replan's waits for watchers ({@link RouterGrpcService#stopCalls}), so the server's graceful stop then waits only
 * for short calls, not its whole grace for streams gateways keep open (and reopen at once when ended while the
 * server still took calls). Started again after a stop, it is SERVING again at once when an epoch is published, and
 * follows the instance set again (a new follower timer, discovery from a fresh list).
 *
 * <p>With a placement lease ({@code moemesh.router.discovery.lease}) it takes the lease at start and releases it at
 * stop. Only while it holds it does the router place, say SERVING and take WatchPlacement and ReportRoutes streams:
 * when it takes it, the ConfigMap's epoch is read again (another router may have published since) and the instance
 * set placed on again at a new epoch, unless it finds the lease still its own (it gave it up without anyone taking it
 * over: its epoch is still the holder's last, so it resumes at once, SERVING, and places again only when the
 * ConfigMap holds a newer epoch); when it loses it, placement stops, health turns NOT_SERVING and the open streams
 * end with UNAVAILABLE (the gateways reconnect, to the router that holds it).
 */
final class RouterBackground implements SmartLifecycle {
    private static final Logger log = LoggerFactory.getLogger(RouterBackground.class);

    private final RouterProperties props;
    private final PlacementCoordinator coordinator;
    private final RouteBook book;
    private final GrpcServerLifecycle server;
    private final RouterGrpcService service;
    private final RouterMetrics metrics;
    private final EpochStore store;
    private final RouterDiscovery discovery;
    private final InstanceSetFollower follower;
    private volatile ScheduledExecutorService timer;
    /** Orders health changes: a publication's SERVING never lands after the stop's NOT_SERVING. */
    private final Object health = new Object();
    /** Between {@link #stop} and the next {@link #start}: publications leave health NOT_SERVING. */
    private boolean stopping;
    /** Whether this router may place: it holds the placement lease, or there is none. Guarded by {@link #health}. */
    private boolean leading;
    /** The hold on placement while this router does not hold the lease (null: none). Guarded by {@link #health}. */
    private EpochFloor.Hold leaseHold;

    RouterBackground(RouterProperties props, PlacementCoordinator coordinator, RouteBook book, GrpcServerLifecycle server,
                     RouterGrpcService service, RouterMetrics metrics, RouterDiscovery discovery,
                     InstanceSetFollower follower) {
        this.discovery = discovery;
        this.follower = follower;
        this.props = props;
        this.coordinator = coordinator;
        this.book = book;
        this.server = server;
        this.service = service;
        this.metrics = metrics;
        this.store = new EpochStore(props.stateDir());
        coordinator.onPublished(o -> snapshot());
        coordinator.onPublished(o -> published());
        leading = discovery.lease() == null;
        if (discovery.lease() != null) {
            // No placement before this router holds the lease (taken at start; the ConfigMap is read again then).
            leaseHold = coordinator.floor().hold(LEASE_HOLD);
            discovery.lease().listen(new RouterLease.Listener() {
                @Override
                public void acquired(boolean resumed) {
                    leaseAcquired(resumed);
                }

                @Override
                public void lost(String why) {
                    leaseLost(why);
                }
            });
        }
    }

    private void published() {
        synchronized (health) {
            if (!stopping && leading) {
                server.setServing(true);
            }
        }
    }

    /** @param resumed the lease still named this router: nobody placed since it last did */
    private void leaseAcquired(boolean resumed) {
        boolean placed = coordinator.current() != null;
        EpochFloor.Hold hold;
        synchronized (health) {
            leading = true;
            hold = leaseHold;
            leaseHold = null;
            if (!stopping) {
                service.resumeCalls();
                if (resumed && placed) {
                    server.setServing(true); // its epoch is still the last one placed
                }
            }
        }
        // Another router may have published since this one last read the ConfigMap: read it again before placing.
        // A newer epoch there makes the coordinator behind, and the follower places again above it.
        RouterServiceConfiguration.readConfigMapEpoch(coordinator, discovery.publisher(), props.discovery());
        if (hold != null) {
            coordinator.floor().release(hold);
        }
        if (!resumed || !placed) {
            // Taken over: the gateways may follow the other router's epochs, so place again at a new one (SERVING
            // once published).
            follower.placeAgain();
        }
    }

    private void holdForLease() {
        synchronized (health) {
            if (leaseHold == null) {
                leaseHold = coordinator.floor().hold(LEASE_HOLD);
            }
        }
    }

    private void leaseLost(String why) {
        holdForLease();
        synchronized (health) {
            leading = false;
            server.setServing(false);
        }
        service.standBy("another router holds the placement lease, or this one could not renew it (" + why + ")");
    }

    /** Why nothing is placed while another router holds the placement lease. */
    static final String LEASE_HOLD = "this router does not hold the placement lease";

    @Override
    public void start() {
        synchronized (health) {
            stopping = false;
            // Started again after a stop: the server came back NOT_SERVING, and the epoch it serves is still current.
            if (coordinator.current() != null && leading) {
                server.setServing(true);
            }
            if (leading) {
                service.resumeCalls();
            } else {
                service.standBy("it does not hold the placement lease (yet)");
            }
        }
        ScheduledExecutorService t = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().name("router-background").daemon().factory());
        timer = t;
        // The first epoch and every change of the instance set: the follower places on what discovery delivers
        // (the configured list at once; in Kubernetes the READY pods, after the settle time), retrying every
        // startup-retry while instances fail to load it. Both were closed by a stop before: they start afresh.
        follower.start();
        discovery.instances().start(set -> follower.offer(set, discovery.instances().restarts()));
        if (discovery.lease() != null) {
            discovery.lease().start();
        }
        long snap = props.snapshotPeriod().toMillis();
        t.scheduleWithFixedDelay(this::snapshot, snap, snap, TimeUnit.MILLISECONDS);
        if (!props.autoReplanPeriod().isZero()) {
            long every = props.autoReplanPeriod().toMillis();
            t.scheduleWithFixedDelay(this::autoReplan, every, every, TimeUnit.MILLISECONDS);
        }
    }

    private void autoReplan() {
        if (coordinator.current() == null || coordinator.replanRunning()) {
            return;
        }
        try {
            coordinator.replan(null).whenComplete((o, e) -> {
                if (e != null) {
                    metrics.replanFailed();
                    log.warn("automatic replan not published: {}", e.getMessage());
                }
            });
        } catch (IllegalStateException e) {
            log.debug("automatic replan skipped: {}", e.getMessage());
        }
    }

    private void snapshot() {
        try {
            RouteBookSnapshots.write(store.routerDir(), book);
        } catch (RuntimeException e) {
            log.warn("cannot snapshot the route statistics to {}", store.routerDir(), e);
        }
    }

    @Override
    public void stop() {
        // Before the streams are refused: a router that refuses them must not say SERVING (gateways would keep
        // reopening them here), and a Replan published during the stop must not say so again.
        synchronized (health) {
            stopping = true;
            server.setServing(false);
        }
        // Then, before anything else: no stream opened from here on holds the server's stop.
        service.stopCalls();
        ScheduledExecutorService t = timer;
        timer = null;
        if (t != null) {
            t.shutdownNow();
        }
        discovery.instances().close();
        follower.close();
        if (discovery.lease() != null) {
            // Released: the next router takes it over at once. Held again (and placement with it) at the next start.
            holdForLease();
            discovery.lease().close();
            synchronized (health) {
                leading = false;
            }
        }
        snapshot();
    }

    @Override
    public boolean isRunning() {
        return timer != null;
    }

    /** After the gRPC server (Integer.MAX_VALUE - 2048) on start, before it on stop. */
    @Override
    public int getPhase() {
        return Integer.MAX_VALUE - 1024;
    }
}
