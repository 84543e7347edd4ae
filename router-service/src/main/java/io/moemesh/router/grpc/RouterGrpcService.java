package io.moemesh.router.grpc;

import io.grpc.Context;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.moemesh.proto.router.v1.DescribeRouterRequest;
import io.moemesh.proto.router.v1.DescribeRouterResponse;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.proto.router.v1.PlacementSummary;
import io.moemesh.proto.router.v1.PredictPathsRequest;
import io.moemesh.proto.router.v1.PredictPathsResponse;
import io.moemesh.proto.router.v1.ReplanRequest;
import io.moemesh.proto.router.v1.ReplanResponse;
import io.moemesh.proto.router.v1.ReportRoutesRequest;
import io.moemesh.proto.router.v1.ReportRoutesResponse;
import io.moemesh.proto.router.v1.RouterServiceGrpc;
import io.moemesh.proto.router.v1.WatchPlacementRequest;
import io.moemesh.proto.router.v1.WatchPlacementResponse;
import io.moemesh.proto.router.v1.WatcherState;
import io.moemesh.router.coordination.PlacementCoordinator;
import io.moemesh.router.coordination.PlacementMessages;
import io.moemesh.router.coordination.ReplanOutcome;
import io.moemesh.router.coordination.WatcherRegistry;
import io.moemesh.router.placement.PlacementEval;
import io.moemesh.router.reports.RouteBook;
import io.moemesh.service.grpc.OpenStreams;
import io.moemesh.service.tls.MeshIdentity;
import io.moemesh.service.tls.PeerIdentityInterceptor;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * moemesh.router.v1.RouterService over the route book and the placement coordinator; every error goes through
 * {@link RouterStatuses}. Replans run on the coordinator's thread, never on a gRPC thread; the answer is sent from
 * there (or, waiting for watchers, from {@code waiter}). Replan is only for the operator identities
 * ({@link OperatorPolicy}; the caller's identity comes from its mutual TLS certificate through
 * {@link PeerIdentityInterceptor}); everything else is open to any member of the mesh.
 */
public final class RouterGrpcService extends RouterServiceGrpc.RouterServiceImplBase {
    private static final Logger log = LoggerFactory.getLogger(RouterGrpcService.class);
    static final Duration DEFAULT_WATCHERS_TIMEOUT = Duration.ofSeconds(30);
    /** The longest Replan may wait for watchers (watchers_timeout_ms, router.proto). */
    static final Duration MAX_WATCHERS_TIMEOUT = Duration.ofMinutes(10);
    /** The most the stop waits for Replan's waits for watchers to answer (each takes microseconds). */
    private static final Duration RELEASE_WAITERS = Duration.ofSeconds(5);
    /** How the router ends its open streams when it stops. */
    static final Status SHUTTING_DOWN = Status.UNAVAILABLE.withDescription("the router is shutting down");

    private final RouteBook book;
    private final PathPredictions predictions;
    private final PlacementCoordinator coordinator;
    private final WatcherRegistry watchers;
    private final Executor waiter;
    private final Runnable replanFailed;
    private final OperatorPolicy operators;
    /**
     * The streams gateways keep open (WatchPlacement, ReportRoutes), each known by what ends it at stop; Replan's
     * waits for watchers end once this is {@link OpenStreams#stopping() stopping}.
     */
    private final OpenStreams<Runnable> calls = new OpenStreams<>();
    /** What ends the streams and refuses new ones while {@link #calls} stops: the stop's, or the standby's. */
    private volatile Status refusal = SHUTTING_DOWN;

    /**
     * @param waiter       runs the waits for watchers (blocking; not a gRPC or replan thread)
     * @param replanFailed called when a replan's epoch was not published (an instance failed to load it)
     * @param operators    who may call Replan
     */
    public RouterGrpcService(RouteBook book, PlacementCoordinator coordinator, WatcherRegistry watchers, Executor waiter,
                             Runnable replanFailed, OperatorPolicy operators) {
        this.replanFailed = replanFailed;
        this.operators = operators;
        this.book = book;
        this.predictions = new PathPredictions(book, coordinator::currentEpoch);
        this.coordinator = coordinator;
        this.watchers = watchers;
        this.waiter = waiter;
    }

    @Override
    public void predictPaths(PredictPathsRequest req, StreamObserver<PredictPathsResponse> obs) {
        unary(obs, "PredictPaths", () -> predictions.answer(req));
    }

    @Override
    public StreamObserver<ReportRoutesRequest> reportRoutes(StreamObserver<ReportRoutesResponse> responses) {
        return ReportStream.open(book, watchers, coordinator, responses, calls, () -> refusal);
    }

    @Override
    public void watchPlacement(WatchPlacementRequest req, StreamObserver<WatchPlacementResponse> obs) {
        ServerCallStreamObserver<WatchPlacementResponse> call = (ServerCallStreamObserver<WatchPlacementResponse>) obs;
        String id = req.getWatcherId();
        try {
            if (id.isBlank()) {
                throw new IllegalArgumentException("watcher_id: must name the watching gateway (the source of its "
                        + "ReportRoutes)");
            }
            RouteBook.checkIdLength(id, WatcherRegistry.MAX_ID_BYTES, "watcher_id");
            // No epoch reaches 2^63 (EpochFloor refuses one), so a watch from such a "known" epoch would never be sent
            // a placement, yet stay registered: listed by DescribeRouter, waited for by every Replan with
            // wait_for_watchers. A client bug (a cast of -1): refused before the watcher is registered.
            if (req.getKnownEpoch() < 0) {
                throw new IllegalArgumentException("known_epoch: " + Long.toUnsignedString(req.getKnownEpoch())
                        + " is not an epoch (epochs are below 2^63; 0 = none known)");
            }
        } catch (IllegalArgumentException e) {
            call.onError(RouterStatuses.toStatus(e).asRuntimeException());
            return;
        }
        if (calls.stopping()) {
            call.onError(refusal.asRuntimeException());
            return;
        }
        OpenWatch w = new OpenWatch(call, id);
        watchers.opened(id);
        call.setOnCancelHandler(w::end);
        call.setOnReadyHandler(w::drain);
        w.registered(coordinator.watch(req.getKnownEpoch(), "gateway " + id, w::offer));
        if (!calls.register(w.endAtStop)) {
            w.endAtStop(); // the router began stopping while this watch was being registered
        }
    }

    /**
     * One WatchPlacement stream. Placements are complete (never deltas), so a watcher that reads slowly needs only
     * the latest: at most one waits for the transport to be ready (sent from the onReady handler), a newer one
     * replaces it. Sending each as published would buffer without bound for a watcher that stopped reading.
     */
    private final class OpenWatch {
        private final ServerCallStreamObserver<WatchPlacementResponse> call;
        private final String id;
        private final Runnable endAtStop = this::endAtStop;
        private Placement undelivered;
        private AutoCloseable registration;
        private boolean ended;

        OpenWatch(ServerCallStreamObserver<WatchPlacementResponse> call, String id) {
            this.call = call;
            this.id = id;
        }

        void offer(Placement p) {
            synchronized (this) {
                if (ended) {
                    return;
                }
                undelivered = p;
            }
            drain();
        }

        /** Sends the waiting placement if the transport takes it now; onNext calls never overlap (this lock). */
        synchronized void drain() {
            while (!ended && undelivered != null && call.isReady()) {
                Placement p = undelivered;
                undelivered = null;
                try {
                    call.onNext(WatchPlacementResponse.newBuilder().setPlacement(p).build());
                } catch (RuntimeException e) {
                    log.debug("watcher {} went away", id, e);
                }
            }
        }

        /** The coordinator's registration; closed at once if the stream ended while it was being made. */
        void registered(AutoCloseable r) {
            synchronized (this) {
                if (!ended) {
                    registration = r;
                    return;
                }
            }
            close(r);
        }

        /** Ends the watch everywhere it is registered (cancelled, or the router shutting down); idempotent. */
        void end() {
            AutoCloseable r;
            synchronized (this) {
                if (ended) {
                    return;
                }
                ended = true;
                undelivered = null;
                r = registration;
            }
            calls.unregister(endAtStop);
            watchers.closed(id);
            close(r);
        }

        /** Ends the stream with UNAVAILABLE (the router stops); ending a call from the server fires no cancel handler. */
        void endAtStop() {
            end();
            synchronized (this) {
                try {
                    call.onError(refusal.asRuntimeException());
                } catch (RuntimeException e) {
                    log.debug("watch already ended", e);
                }
            }
        }

        private void close(AutoCloseable r) {
            if (r == null) {
                return;
            }
            try {
                r.close();
            } catch (Exception e) {
                log.debug("closing watch of {}", id, e);
            }
        }
    }

    /**
     * The router stops: refuses new WatchPlacement and ReportRoutes streams, then ends the open ones with
     * UNAVAILABLE (watchers reconnect, reporters reopen; samples received stay ingested) and Replan's waits for
     * watchers (answered with the watchers that had not applied the epoch yet), so none holds the gRPC server's
     * graceful stop for its grace.
     */
    public void stopCalls() {
        stopCalls(SHUTTING_DOWN);
    }

    /**
     * As {@link #stopCalls()} for a router that stands by (another holds the placement lease): the streams are
     * ended, and new ones refused, with UNAVAILABLE saying {@code why}, so gateways go to the router that places.
     */
    public void standBy(String why) {
        stopCalls(Status.UNAVAILABLE.withDescription("this router stands by: " + why));
    }

    private void stopCalls(Status status) {
        refusal = status;
        // Refused before the open ones end: ended first, a gateway reopens its watch about 200 ms later, and that
        // one would hold the server's graceful stop for its whole grace.
        calls.stopAccepting();
        // The waits answer first, while the watchers they wait for are still registered: ended first, the watches
        // would leave the registry and the answers would say every watcher applied the epoch.
        watchers.releaseWaiters(RELEASE_WAITERS);
        calls.endAll(Runnable::run);
    }

    /**
     * Takes streams again after {@link #stopCalls()} (a Spring context stopped and started again) or
     * {@link #standBy} (the placement lease taken).
     */
    public void resumeCalls() {
        calls.resume();
    }

    @Override
    public void replan(ReplanRequest req, StreamObserver<ReplanResponse> obs) {
        CompletableFuture<ReplanOutcome> f;
        Duration timeout;
        try {
            operators.checkMayReplan(PeerIdentityInterceptor.current().map(MeshIdentity::name));
            timeout = watchersTimeout(req);
            f = coordinator.replan(req.getPlanner());
        } catch (RuntimeException e) {
            Status s = RouterStatuses.toStatus(e);
            logRefusal("Replan", s, e);
            obs.onError(s.asRuntimeException());
            return;
        }
        CompletableFuture<ReplanResponse> answer = f.thenApply(this::response);
        if (req.getWaitForWatchers()) {
            Context context = Context.current();
            answer = answer.thenApplyAsync(r -> awaitWatchers(r, timeout, context), waiter);
        }
        answer.whenComplete((r, t) -> {
            if (t != null) {
                Status s = RouterStatuses.toStatus(t);
                if (s.getCode() == Status.Code.ABORTED) {
                    replanFailed.run();
                }
                logRefusal("Replan", s, t);
                obs.onError(s.asRuntimeException());
            } else {
                obs.onNext(r);
                obs.onCompleted();
            }
        });
    }

    /** watchers_timeout_ms: 0 = the default, at most {@link #MAX_WATCHERS_TIMEOUT}; null without wait_for_watchers. */
    private static Duration watchersTimeout(ReplanRequest req) {
        if (!req.getWaitForWatchers()) {
            return null;
        }
        long ms = Integer.toUnsignedLong(req.getWatchersTimeoutMs());
        if (ms > MAX_WATCHERS_TIMEOUT.toMillis()) {
            throw new IllegalArgumentException("watchers_timeout_ms: " + ms + " ms is more than the most, "
                    + MAX_WATCHERS_TIMEOUT.toMillis() + " (10 minutes)");
        }
        return ms == 0 ? DEFAULT_WATCHERS_TIMEOUT : Duration.ofMillis(ms);
    }

    /**
     * The published epoch's answer once every watcher applied it, the timeout ran out, the Replan call was cancelled
     * (its context: the client went away or its deadline passed; the answer is then dropped) or the router stops
     * (answered with the watchers pending then): a thread parked for a call nobody waits for would also hold the
     * server's graceful stop.
     */
    private ReplanResponse awaitWatchers(ReplanResponse r, Duration timeout, Context call) {
        // stopCalls() marks the stop before it wakes the waits (releaseWaiters), so none misses it.
        Context.CancellationListener cancelled = c -> watchers.wakeWaiters();
        call.addListener(cancelled, Runnable::run);
        try {
            List<String> pending = watchers.awaitApplied(r.getEpoch(), coordinator::currentEpoch, timeout,
                    () -> call.isCancelled() || calls.stopping());
            return r.toBuilder().setApplied(pending.isEmpty()).addAllUnappliedWatchers(pending).build();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for the watchers", e);
        } finally {
            call.removeListener(cancelled);
        }
    }

    /** publish_millis: the outcome's time to publication, not to the end of the COMMITs that follow it. */
    private ReplanResponse response(ReplanOutcome o) {
        PlacementEval e = o.score();
        io.moemesh.router.placement.Placement routed = PlacementMessages.toDomain(o.placement(), book.shape().layers(),
                book.shape().experts());
        PlacementSummary.Builder s = PlacementSummary.newBuilder().setInstances(o.placement().getInstancesCount())
                .setExtraReplicas(routed.extraReplicas()).setMaxSlotsUsed(routed.maxSlotsUsed())
                .setRoutesScored(o.routesScored());
        if (e != null) {
            s.setFanOut(e.fanOut()).setLoadMaxOverMean(e.loadMaxOverMean());
        }
        return ReplanResponse.newBuilder().setEpoch(o.placement().getEpoch()).setPlanner(o.planner()).setSummary(s)
                .setApplied(true).setPublishMillis(o.publishNanos() / 1_000_000).build();
    }

    @Override
    public void describeRouter(DescribeRouterRequest req, StreamObserver<DescribeRouterResponse> obs) {
        unary(obs, "DescribeRouter", () -> {
            DescribeRouterResponse.Builder b = DescribeRouterResponse.newBuilder()
                    .setPlacementEpoch(coordinator.currentEpoch()).setPlanner(coordinator.settings().planner())
                    .setPredictor(book.predictorName()).setRoutesSeen(book.ingested())
                    .setRoutesInWindow(book.windowSize()).setReplanRunning(coordinator.replanRunning())
                    .setInstances(coordinator.instances().size());
            watchers.watchers().forEach((id, epoch) -> b.addWatchers(
                    WatcherState.newBuilder().setWatcherId(id).setAppliedEpoch(epoch)));
            return b.build();
        });
    }

    private <T> void unary(StreamObserver<T> obs, String method, Supplier<T> body) {
        T response;
        try {
            response = body.get();
        } catch (RuntimeException e) {
            Status s = RouterStatuses.toStatus(e);
            logRefusal(method, s, e);
            obs.onError(s.asRuntimeException());
            return;
        }
        obs.onNext(response);
        obs.onCompleted();
    }

    static void logRefusal(String method, Status s, Throwable t) {
        if (s.getCode() == Status.Code.INTERNAL) {
            log.error("{} failed", method, t);
        } else {
            log.info("{} refused: {} {}", method, s.getCode(), s.getDescription());
        }
    }
}
