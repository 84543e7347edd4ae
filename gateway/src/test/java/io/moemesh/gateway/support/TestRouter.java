package io.moemesh.gateway.support;

import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.proto.router.v1.ReportRoutesRequest;
import io.moemesh.proto.router.v1.ReportRoutesResponse;
import io.moemesh.proto.router.v1.RouterServiceGrpc;
import io.moemesh.proto.router.v1.WatchPlacementRequest;
import io.moemesh.proto.router.v1.WatchPlacementResponse;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A small real router.v1 RouterService on a real socket with mutual TLS (the router's certificate of
 * {@link TestCertificates}): it publishes the placements a test hands it on every open WatchPlacement stream (as
 * the real router: the current one first when newer than known_epoch, then each new one), records the watch
 * requests and every ReportRoutes message, and can refuse the next report message with INVALID_ARGUMENT. It can be
 * stopped and started again on the same port (a router restart).
 */
public final class TestRouter implements AutoCloseable {
    /** Every WatchPlacement request, in arrival order. */
    public final List<WatchPlacementRequest> watches = new CopyOnWriteArrayList<>();
    /** Every ReportRoutes message, in arrival order, with the time it arrived. */
    public final List<Report> reports = new CopyOnWriteArrayList<>();
    /** While set, the next ReportRoutes message ends its stream with INVALID_ARGUMENT (then it clears itself). */
    public final AtomicBoolean refuseNextReport = new AtomicBoolean();
    /** ReportRoutes streams refused so far. */
    public final AtomicInteger refused = new AtomicInteger();
    private final Set<ServerCallStreamObserver<WatchPlacementResponse>> open = ConcurrentHashMap.newKeySet();
    private volatile Placement current;
    private GrpcServerLifecycle server;
    private int port;

    /** A report message and when it arrived ({@link System#nanoTime()}). */
    public record Report(ReportRoutesRequest message, long nanos) {
    }

    public TestRouter() {
        start(0);
    }

    private synchronized void start(int onPort) {
        server = new GrpcServerLifecycle("test-router", "127.0.0.1", onPort,
                TestCertificates.credentials("router").server(), 64 << 20, Duration.ofMillis(200),
                List.of(new Service()), List.of());
        server.start();
        port = server.port();
    }

    public int port() {
        return port;
    }

    public String endpoint() {
        return "127.0.0.1:" + port;
    }

    /** Publishes a placement: current from now on, sent to every open watch (whatever its epoch: tests send bad ones). */
    public void publish(Placement p) {
        current = p;
        for (ServerCallStreamObserver<WatchPlacementResponse> w : List.copyOf(open)) {
            synchronized (w) {
                if (!w.isCancelled()) {
                    w.onNext(WatchPlacementResponse.newBuilder().setPlacement(p).build());
                }
            }
        }
    }

    /** Open WatchPlacement streams. */
    public int openWatches() {
        return open.size();
    }

    /** Ends every watch with UNAVAILABLE (as the real router shutting down) and stops listening. */
    public synchronized void stop() {
        for (ServerCallStreamObserver<WatchPlacementResponse> w : List.copyOf(open)) {
            synchronized (w) {
                try {
                    w.onError(Status.UNAVAILABLE.withDescription("the router is shutting down").asRuntimeException());
                } catch (RuntimeException ignored) {
                    // already ended
                }
            }
        }
        open.clear();
        server.stop();
    }

    /** Listens again on the same port (keeping the current placement, as the real router's snapshot does). */
    public synchronized void restart() {
        start(port);
    }

    @Override
    public void close() {
        stop();
    }

    private final class Service extends RouterServiceGrpc.RouterServiceImplBase {
        @Override
        public void watchPlacement(WatchPlacementRequest req, StreamObserver<WatchPlacementResponse> obs) {
            watches.add(req);
            ServerCallStreamObserver<WatchPlacementResponse> call = (ServerCallStreamObserver<WatchPlacementResponse>) obs;
            call.setOnCancelHandler(() -> open.remove(call));
            synchronized (call) {
                open.add(call);
                Placement p = current;
                if (p != null && p.getEpoch() > req.getKnownEpoch()) {
                    call.onNext(WatchPlacementResponse.newBuilder().setPlacement(p).build());
                }
            }
        }

        @Override
        public StreamObserver<ReportRoutesRequest> reportRoutes(StreamObserver<ReportRoutesResponse> responses) {
            return new StreamObserver<>() {
                private long accepted;
                private boolean failed;

                @Override
                public void onNext(ReportRoutesRequest req) {
                    if (failed) {
                        return;
                    }
                    reports.add(new Report(req, System.nanoTime()));
                    if (refuseNextReport.compareAndSet(true, false)) {
                        failed = true;
                        refused.incrementAndGet();
                        responses.onError(Status.INVALID_ARGUMENT.withDescription("samples[0].route.layers[0].experts: "
                                + "refused by the test").asRuntimeException());
                        return;
                    }
                    accepted += req.getSamplesCount();
                }

                @Override
                public void onError(Throwable t) {
                }

                @Override
                public void onCompleted() {
                    if (!failed) {
                        responses.onNext(ReportRoutesResponse.newBuilder().setAccepted(accepted).build());
                        responses.onCompleted();
                    }
                }
            };
        }
    }
}
