package io.moemesh.gateway.placement;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.moemesh.gateway.routing.Backoff;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.proto.router.v1.RouterServiceGrpc;
import io.moemesh.proto.router.v1.WatchPlacementRequest;
import io.moemesh.proto.router.v1.WatchPlacementResponse;
import io.moemesh.service.placement.PlacementTable;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Follows the router's {@code WatchPlacement} stream (router.v1): every placement received is validated against
 * the model ({@link PlacementTable#of}); one that does not fit is logged naming its epoch and what is wrong, and
 * ignored, and only a higher epoch than the one in force replaces it. The last good placement keeps serving, but
 * only until the expert-services drain its epoch: the router COMMITs a new epoch right after publishing it, and an
 * instance refuses the old one once its {@code drain-grace} after that COMMIT has passed. So while an epoch newer
 * than every one taken did not fit, {@link #unapplied()} names it and the gateway is not ready (ExpertReadiness),
 * until the router publishes a later epoch that fits.
 * When the stream fails or ends (the router restarting: UNAVAILABLE) it is opened again after an exponential
 * backoff with jitter ({@link Backoff}; reset by a placement received, or a stream that stayed open longer than the
 * backoff's cap), with {@code known_epoch} = the epoch in force, so the router sends only newer ones.
 *
 * <p>With a placement file as well ({@code file}, which the router also writes every epoch to), the source serves
 * the highest valid epoch of either: the file gives the starting placement before the router answers (or while
 * it is down), and both carry the same epochs, so neither can move the gateway backwards.
 *
 * <p>{@link #current()} is a non-blocking read for the engine thread (once per step: a new epoch takes effect at
 * a step boundary); the stream's callbacks run on gRPC threads, reconnects on a daemon thread of its own.
 */
public final class RouterPlacementSource implements PlacementSource, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(RouterPlacementSource.class);

    private final String endpoint;
    private final String watcherId;
    private final int layers;
    private final int dispatchableExperts;
    private final PlacementSource file;
    private final ManagedChannel channel;
    private final RouterServiceGrpc.RouterServiceStub stub;
    private final Backoff backoff;
    private final Duration maxBackoff;
    private volatile Runnable onNewPlacement = () -> { };
    private final ScheduledExecutorService retry = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().name("moemesh-placement-watch").daemon().factory());
    private final LongAdder reconnects = new LongAdder();
    private final LongAdder rejected = new LongAdder();
    /** The newest epoch the router sent that did not fit the model, and why (null: none). */
    private volatile Rejected newestRejected;
    /** The newest valid placement the router sent (null: none yet). */
    private volatile PlacementTable fromRouter;
    /** The epoch {@link #current()} last served (0: none). */
    private volatile long inForce;
    private volatile boolean closed;
    /** The open watch call (guarded by this). */
    private ClientCallStreamObserver<WatchPlacementRequest> call;

    private record Rejected(long epoch, String why) {
    }

    /**
     * @param channel        to the router ({@code moemesh.gateway.router.endpoint}, mesh credentials)
     * @param endpoint       the router's address, for messages
     * @param watcherId      this gateway's watcher id (its ReportRoutes source)
     * @param file           the placement file's source, or null
     */
    public RouterPlacementSource(ManagedChannel channel, String endpoint, String watcherId, int layers, int dispatchableExperts,
                                 PlacementSource file, Duration initialBackoff, Duration maxBackoff) {
        this.endpoint = endpoint;
        this.watcherId = watcherId;
        this.layers = layers;
        this.dispatchableExperts = dispatchableExperts;
        this.file = file;
        this.channel = channel;
        this.stub = RouterServiceGrpc.newStub(channel);
        this.backoff = new Backoff(initialBackoff, maxBackoff, () -> ThreadLocalRandom.current().nextDouble());
        this.maxBackoff = maxBackoff;
    }

    /**
     * Called (on a gRPC thread) when a newer placement arrived: wakes the engine loop, so that it applies it at its
     * next step boundary even while idle.
     */
    public void onNewPlacement(Runnable listener) {
        this.onNewPlacement = listener;
    }

    /** Opens the watch (once), telling the router the epoch the placement file gives, if any. */
    public RouterPlacementSource start() {
        current();
        retry.execute(this::watch);
        return this;
    }

    @Override
    public Optional<PlacementTable> current() {
        PlacementTable r = fromRouter;
        PlacementTable f = file == null ? null : file.current().orElse(null);
        PlacementTable best = r == null ? f : f == null || r.epoch() >= f.epoch() ? r : f;
        if (best != null) {
            inForce = best.epoch();
        }
        return Optional.ofNullable(best);
    }

    @Override
    public String absentReason() {
        return "no expert placement yet: waiting for the router at " + endpoint;
    }

    /** The epoch a new watch tells the router it has: the one in force, or the router's newest if higher. */
    public long knownEpoch() {
        PlacementTable r = fromRouter;
        return Math.max(inForce, r == null ? 0 : r.epoch());
    }

    /**
     * The newest epoch the router sent that does not fit the model, while no epoch at least as new was taken from the
     * placement file and none was taken from the router since: the router has moved on to it, so the epoch in force
     * is answered only until the instances drain it.
     */
    @Override
    public Optional<String> unapplied() {
        Rejected r = newestRejected;
        if (r == null || r.epoch() <= knownEpoch()) {
            return Optional.empty();
        }
        return Optional.of("placement epoch " + r.epoch() + " from the router at " + endpoint
                + " does not fit the model: " + r.why());
    }

    /** Watches opened again after the previous one failed or ended. */
    public long reconnects() {
        return reconnects.sum();
    }

    /** Placements from the router ignored: not fitting the model, or not newer than the one in force. */
    public long rejected() {
        return rejected.sum();
    }

    private void watch() {
        if (closed) {
            return;
        }
        long known = knownEpoch();
        long opened = System.nanoTime();
        stub.watchPlacement(WatchPlacementRequest.newBuilder().setKnownEpoch(known).setWatcherId(watcherId).build(),
                new ClientResponseObserver<WatchPlacementRequest, WatchPlacementResponse>() {
                    @Override
                    public void beforeStart(ClientCallStreamObserver<WatchPlacementRequest> c) {
                        synchronized (RouterPlacementSource.this) {
                            call = c;
                        }
                    }

                    @Override
                    public void onNext(WatchPlacementResponse r) {
                        synchronized (backoff) {
                            backoff.reset();
                        }
                        accept(r.getPlacement());
                    }

                    @Override
                    public void onError(Throwable t) {
                        ended(Status.fromThrowable(t), opened);
                    }

                    @Override
                    public void onCompleted() {
                        ended(null, opened);
                    }
                });
    }

    private void ended(Status status, long openedNanos) {
        if (closed) {
            return;
        }
        Duration wait;
        int failures;
        synchronized (backoff) {
            if (System.nanoTime() - openedNanos > maxBackoff.toNanos()) {
                backoff.reset();
            }
            wait = backoff.next();
            failures = backoff.failures();
        }
        String why = status == null ? "the router ended it" : status.getCode() + (status.getDescription() == null ? ""
                : ": " + status.getDescription());
        if (failures == 1) {
            log.warn("the placement watch of the router at {} ended ({}); reconnecting in {} ms with known epoch {}",
                    endpoint, why, wait.toMillis(), knownEpoch());
        } else {
            log.debug("the placement watch of the router at {} ended again ({}, {} in a row); next try in {} ms",
                    endpoint, why, failures, wait.toMillis());
        }
        reconnects.increment();
        try {
            retry.schedule(() -> {
                // grpc-java's own reconnect backoff grows to minutes while the router is away; ours is the one
                // that counts, so a router back on its address is reached at our next try.
                channel.resetConnectBackoff();
                watch();
            }, wait.toNanos(), TimeUnit.NANOSECONDS);
        } catch (java.util.concurrent.RejectedExecutionException e) {
            // closed meanwhile
        }
    }

    /** A placement from the router: the epoch rules of the class comment. */
    synchronized void accept(Placement p) {
        long epoch = p.getEpoch();
        PlacementTable table;
        try {
            table = PlacementTable.of(p, layers, dispatchableExperts);
        } catch (IllegalArgumentException e) {
            rejected.increment();
            long known = knownEpoch();
            Rejected r = newestRejected;
            if (epoch > known && (r == null || epoch >= r.epoch())) {
                newestRejected = new Rejected(epoch, e.getMessage());
                log.error("router {}: placement epoch {} does not fit the model and is ignored: {}; not ready until "
                        + "a later epoch fits ({})", endpoint, epoch, e.getMessage(), known == 0 ? "no placement yet"
                        : "epoch " + known + " is answered only until the expert-services drain it");
            } else {
                log.error("router {}: placement epoch {} does not fit the model and is ignored (keeping epoch {}): {}",
                        endpoint, epoch, known, e.getMessage());
            }
            return;
        }
        PlacementTable last = fromRouter;
        long lastEpoch = last == null ? 0 : last.epoch();
        if (epoch <= Math.max(lastEpoch, inForce)) {
            if (epoch > lastEpoch) {
                // The placement file already brought this epoch (the router writes every epoch to it).
                log.debug("router {}: epoch {} is already in force", endpoint, epoch);
            } else {
                rejected.increment();
                log.warn("router {}: placement epoch {} is not newer than epoch {} in force; ignored (a new placement "
                        + "needs a higher epoch)", endpoint, epoch, Math.max(lastEpoch, inForce));
            }
            return;
        }
        fromRouter = table;
        // Taken after a rejected one: the router has moved on, even to a lower number (a router that lost its state
        // and its ConfigMap write of the rejected epoch deals again from below it).
        newestRejected = null;
        log.info("router {}: placement epoch {} received ({} instances); applied at the next step boundary", endpoint,
                epoch, p.getInstancesCount());
        onNewPlacement.run();
    }

    @Override
    public void close() {
        closed = true;
        retry.shutdownNow();
        synchronized (this) {
            if (call != null) {
                call.cancel("the gateway is shutting down", null);
            }
        }
    }
}
