package io.moemesh.router.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.grpc.Context;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.InsecureServerCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.StreamObserver;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.LayerRoute;
import io.moemesh.proto.router.v1.ReplanRequest;
import io.moemesh.proto.router.v1.ReplanResponse;
import io.moemesh.proto.router.v1.ReportRoutesRequest;
import io.moemesh.proto.router.v1.ReportRoutesResponse;
import io.moemesh.proto.router.v1.RouteSample;
import io.moemesh.proto.router.v1.RouterServiceGrpc;
import io.moemesh.proto.router.v1.TokenRoute;
import io.moemesh.proto.router.v1.WatchPlacementRequest;
import io.moemesh.proto.router.v1.WatchPlacementResponse;
import io.moemesh.router.coordination.AssignedExpert;
import io.moemesh.router.coordination.EpochStore;
import io.moemesh.router.coordination.HeldEpochs;
import io.moemesh.router.coordination.InstanceLoader;
import io.moemesh.router.coordination.PlacementCoordinator;
import io.moemesh.router.coordination.WatcherRegistry;
import io.moemesh.router.placement.PlacementBudget;
import io.moemesh.router.prediction.ModelShape;
import io.moemesh.router.prediction.PathPredictors;
import io.moemesh.router.reports.RouteBook;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * ReportRoutes' and WatchPlacement's bounds, how they and Replan's waits for watchers end when the router stops or
 * the call is cancelled, against RouterGrpcService on a real server over a real socket
 * (plaintext: these RPCs do not look at the caller's identity), with a coordinator whose instances always load.
 */
class RouterStreamsSocketTest {
    /** 16 layers × 64 experts: each placement is about 15 KB on the wire. */
    static final ModelShape SHAPE = new ModelShape(16, 64, 2);
    static final List<Instance> INSTANCES = List.of(instance("expert-0"), instance("expert-1"), instance("expert-2"));

    @TempDir
    Path stateDir;
    final RouteBook book = new RouteBook(SHAPE, PathPredictors.named(PathPredictors.DEFAULT, SHAPE), 1000);
    final WatcherRegistry watchers = new WatcherRegistry();
    /** Runs Replan's waits for watchers: its active count shows a wait in progress. */
    final ThreadPoolExecutor waits = (ThreadPoolExecutor) Executors.newFixedThreadPool(2);
    PlacementCoordinator coordinator;
    RouterGrpcService service;
    Server server;
    ManagedChannel channel;

    static Instance instance(String id) {
        return Instance.newBuilder().setId(id).setEndpoint("127.0.0.1:1").build();
    }

    static final class LoadingInstances implements InstanceLoader {
        @Override
        public void prepare(Instance instance, long epoch, List<AssignedExpert> experts, Duration timeout) {
        }

        @Override
        public void commit(Instance instance, long epoch, Duration timeout) {
        }

        @Override
        public void abort(Instance instance, long epoch, Duration timeout) {
        }

        @Override
        public HeldEpochs held(Instance instance, Duration timeout) {
            return HeldEpochs.NONE;
        }
    }

    @BeforeEach
    void start() throws Exception {
        var settings = new PlacementCoordinator.Settings(INSTANCES, SHAPE, false, 1, PlacementBudget.slots(3, 64),
                "affinity", 1_000_000, Duration.ofSeconds(30));
        coordinator = new PlacementCoordinator(settings, book, new LoadingInstances(), new EpochStore(stateDir),
                Executors.newSingleThreadExecutor(), Executors.newFixedThreadPool(3), System::nanoTime);
        coordinator.start().join();
        service = new RouterGrpcService(book, coordinator, watchers, waits, () -> { },
                OperatorPolicy.unauthenticated());
        server = Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create()).addService(service).build().start();
        channel = Grpc.newChannelBuilderForAddress("localhost", server.getPort(), InsecureChannelCredentials.create())
                .build();
    }

    @AfterEach
    void stop() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        coordinator.close();
        waits.shutdownNow();
    }

    static RouteSample sample(String requestId) {
        return RouteSample.newBuilder().setRequestId(requestId).setRoute(TokenRoute.newBuilder().setTokenId(3)
                .addLayers(LayerRoute.newBuilder().setLayer(0).addExperts(1).addExperts(2))).build();
    }

    /** Sends one message on a ReportRoutes stream and half-closes: the answer, or the error that ended it. */
    CompletableFuture<Object> report(ReportRoutesRequest req) {
        CompletableFuture<Object> end = new CompletableFuture<>();
        StreamObserver<ReportRoutesRequest> s = RouterServiceGrpc.newStub(channel).reportRoutes(new StreamObserver<>() {
            @Override
            public void onNext(ReportRoutesResponse r) {
                end.complete(r);
            }

            @Override
            public void onError(Throwable t) {
                end.complete(t);
            }

            @Override
            public void onCompleted() {
            }
        });
        s.onNext(req);
        s.onCompleted();
        return end;
    }

    static void assertInvalidArgument(Object end, String description) {
        assertThat(end).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(e.getStatus().getDescription()).isEqualTo(description);
        });
    }

    @Test
    void reportRoutes_withAnOverLongRequestId_isInvalidArgument_namingTheSample_andNothingIsIngested() throws Exception {
        String longest = "r".repeat(RouteBook.MAX_REQUEST_ID_BYTES - 2) + "é"; // 2 bytes in UTF-8: exactly the limit
        Object end = report(ReportRoutesRequest.newBuilder().setSource("gw-1").addSamples(sample(longest))
                .addSamples(sample(longest + "x")).build()).get(30, TimeUnit.SECONDS);
        assertInvalidArgument(end, "samples[1].request_id: longer than 512 bytes (UTF-8)");
        assertThat(book.ingested()).isZero();
        assertThat(book.dropped()).isEqualTo(2);
        Object accepted = report(ReportRoutesRequest.newBuilder().setSource("gw-1").addSamples(sample(longest))
                .build()).get(30, TimeUnit.SECONDS);
        assertThat(accepted).isInstanceOfSatisfying(ReportRoutesResponse.class, r -> assertThat(r.getAccepted())
                .isEqualTo(1));
    }

    @Test
    void reportRoutes_andWatchPlacement_withAnOverLongSourceOrWatcherId_areInvalidArgument_namingTheField()
            throws Exception {
        String tooLong = "g".repeat(WatcherRegistry.MAX_ID_BYTES + 1);
        Object end = report(ReportRoutesRequest.newBuilder().setSource(tooLong).setPlacementEpoch(1).build())
                .get(30, TimeUnit.SECONDS);
        assertInvalidArgument(end, "source: longer than 256 bytes (UTF-8)");
        var it = RouterServiceGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS)
                .watchPlacement(WatchPlacementRequest.newBuilder().setWatcherId(tooLong).build());
        try {
            it.hasNext();
        } catch (StatusRuntimeException e) {
            end = e;
        }
        assertInvalidArgument(end, "watcher_id: longer than 256 bytes (UTF-8)");
    }

    /**
     * No epoch reaches 2^63, so a watch from such a known_epoch (a client's cast of -1) would never be sent a
     * placement, yet DescribeRouter would list it and every Replan with wait_for_watchers would wait for it.
     */
    @Test
    void watchPlacement_withAKnownEpochOf2To63OrMore_isInvalidArgument_namingKnownEpoch_andRegistersNoWatcher() {
        for (long known : new long[] {Long.MIN_VALUE, -1}) {
            var it = RouterServiceGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS)
                    .watchPlacement(WatchPlacementRequest.newBuilder().setWatcherId("gw-x").setKnownEpoch(known)
                            .build());
            Object end = null;
            try {
                it.hasNext();
            } catch (StatusRuntimeException e) {
                end = e;
            }
            assertInvalidArgument(end, "known_epoch: " + Long.toUnsignedString(known)
                    + " is not an epoch (epochs are below 2^63; 0 = none known)");
        }
        assertThat(watchers.watchers()).isEmpty();
    }

    @Test
    void aWatcherThatStopsReading_holdsOnlyTheLatestPlacement_andGetsItWhenItReadsAgain() throws Exception {
        // A small HTTP/2 window: the server's transport stops taking messages after a few placements.
        ManagedChannel slow = NettyChannelBuilder.forAddress("localhost", server.getPort(),
                InsecureChannelCredentials.create()).flowControlWindow(16 * 1024).build();
        try {
            List<Long> seen = new CopyOnWriteArrayList<>();
            CompletableFuture<ClientCallStreamObserver<WatchPlacementRequest>> call = new CompletableFuture<>();
            RouterServiceGrpc.newStub(slow).watchPlacement(WatchPlacementRequest.newBuilder().setWatcherId("gw-slow")
                    .build(), new ClientResponseObserver<WatchPlacementRequest, WatchPlacementResponse>() {
                        @Override
                        public void beforeStart(ClientCallStreamObserver<WatchPlacementRequest> requests) {
                            requests.disableAutoRequestWithInitial(0); // reads nothing until told
                            call.complete(requests);
                        }

                        @Override
                        public void onNext(WatchPlacementResponse r) {
                            seen.add(r.getPlacement().getEpoch());
                        }

                        @Override
                        public void onError(Throwable t) {
                        }

                        @Override
                        public void onCompleted() {
                        }
                    });
            await().atMost(Duration.ofSeconds(10)).until(() -> coordinator.watchCount() == 1);
            long last = 0;
            for (int i = 0; i < 40; i++) {
                last = coordinator.replan(null).join().placement().getEpoch();
            }
            call.get(10, TimeUnit.SECONDS).request(Integer.MAX_VALUE);
            long latest = last;
            await().atMost(Duration.ofSeconds(30)).until(() -> !seen.isEmpty() && seen.getLast() == latest);
            // Buffered for a watcher that was not reading: what the windows took, then only the latest.
            assertThat(seen).isSorted().doesNotHaveDuplicates().hasSizeLessThan(15);
        } finally {
            slow.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    /** A WatchPlacement stream of {@code id}: its placements' epochs into {@code epochs}, its end into {@code ended}. */
    void watch(String id, List<Long> epochs, CompletableFuture<Throwable> ended) {
        RouterServiceGrpc.newStub(channel).watchPlacement(WatchPlacementRequest.newBuilder().setWatcherId(id)
                .build(), new StreamObserver<>() {
                    @Override
                    public void onNext(WatchPlacementResponse r) {
                        epochs.add(r.getPlacement().getEpoch());
                    }

                    @Override
                    public void onError(Throwable t) {
                        ended.complete(t);
                    }

                    @Override
                    public void onCompleted() {
                        ended.complete(null);
                    }
                });
    }

    /** A ReportRoutes stream that sent one sample and stays open: its end (an answer or an error) into {@code end}. */
    StreamObserver<ReportRoutesRequest> openReport(CompletableFuture<Object> end) {
        StreamObserver<ReportRoutesRequest> s = RouterServiceGrpc.newStub(channel).reportRoutes(new StreamObserver<>() {
            @Override
            public void onNext(ReportRoutesResponse r) {
                end.complete(r);
            }

            @Override
            public void onError(Throwable t) {
                end.complete(t);
            }

            @Override
            public void onCompleted() {
            }
        });
        s.onNext(ReportRoutesRequest.newBuilder().setSource("gw-1").setPlacementEpoch(1).addSamples(sample("r-1")).build());
        return s;
    }

    static void assertShuttingDown(Object end) {
        assertThat(end).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
            assertThat(e.getStatus().getDescription()).isEqualTo("the router is shutting down");
        });
    }

    @Test
    void stopCalls_endsEveryWatchWithUnavailable_unregistersIt_andRefusesNewOnes() throws Exception {
        CompletableFuture<Throwable> ended = new CompletableFuture<>();
        watch("gw-1", new CopyOnWriteArrayList<>(), ended);
        await().atMost(Duration.ofSeconds(10)).until(() -> coordinator.watchCount() == 1);
        assertThat(watchers.watchers()).containsOnlyKeys("gw-1");

        service.stopCalls();

        assertShuttingDown(ended.get(30, TimeUnit.SECONDS));
        assertThat(coordinator.watchCount()).isZero();
        assertThat(watchers.watchers()).isEmpty();
        // A gateway reopens its watch at once: refused, so it cannot hold the server's graceful stop.
        CompletableFuture<Throwable> reopened = new CompletableFuture<>();
        watch("gw-1", new CopyOnWriteArrayList<>(), reopened);
        assertShuttingDown(reopened.get(30, TimeUnit.SECONDS));
        assertThat(coordinator.watchCount()).isZero();
        assertThat(watchers.watchers()).isEmpty();
    }

    @Test
    void stopCalls_endsAnOpenReportStreamWithUnavailable_keepingWhatItSent_andRefusesNewOnes() throws Exception {
        CompletableFuture<Object> end = new CompletableFuture<>();
        openReport(end);
        await().atMost(Duration.ofSeconds(10)).until(() -> book.ingested() == 1);

        service.stopCalls();

        assertShuttingDown(end.get(30, TimeUnit.SECONDS));
        assertThat(book.ingested()).isEqualTo(1);
        assertShuttingDown(report(ReportRoutesRequest.newBuilder().setSource("gw-1").addSamples(sample("r-2"))
                .build()).get(30, TimeUnit.SECONDS));
        assertThat(book.ingested()).isEqualTo(1);
        assertThat(book.dropped()).isZero();
    }

    /** Without stopCalls a graceful Server.shutdown() would wait for these forever (gateways keep them open). */
    @Test
    void afterStopCalls_aGracefulServerStop_waitsForNoWatchReportOrReplanWait() throws Exception {
        watch("gw-1", new CopyOnWriteArrayList<>(), new CompletableFuture<>());
        openReport(new CompletableFuture<>());
        var replan = RouterServiceGrpc.newFutureStub(channel).replan(ReplanRequest.newBuilder().setWaitForWatchers(true)
                .setWatchersTimeoutMs((int) RouterGrpcService.MAX_WATCHERS_TIMEOUT.toMillis()).build());
        await().atMost(Duration.ofSeconds(30)).until(() -> watchers.waiting() == 1 && book.ingested() == 1);

        service.stopCalls();
        server.shutdown();

        assertThat(server.awaitTermination(20, TimeUnit.SECONDS)).as("the server stopped").isTrue();
        ReplanResponse r = replan.get(10, TimeUnit.SECONDS);
        assertThat(r.getApplied()).isFalse();
        assertThat(r.getUnappliedWatchersList()).containsExactly("gw-1");
    }

    @Test
    void replan_waitingForWatchers_stopsWaiting_whenTheCallIsCancelled() throws Exception {
        watch("gw-1", new CopyOnWriteArrayList<>(), new CompletableFuture<>());
        await().atMost(Duration.ofSeconds(10)).until(() -> coordinator.watchCount() == 1);
        long before = coordinator.currentEpoch();
        Context.CancellableContext call = Context.current().withCancellation();
        call.run(() -> RouterServiceGrpc.newFutureStub(channel).replan(ReplanRequest.newBuilder()
                .setWaitForWatchers(true).setWatchersTimeoutMs((int) RouterGrpcService.MAX_WATCHERS_TIMEOUT.toMillis())
                .build()));
        await().atMost(Duration.ofSeconds(30)).until(() -> coordinator.currentEpoch() == before + 1
                && waits.getActiveCount() == 1);

        call.cancel(null);

        await().atMost(Duration.ofSeconds(10)).until(() -> waits.getActiveCount() == 0 && watchers.waiting() == 0);
    }

    /**
     * A gateway at epoch 57 (published by a router before this one, which lost its state) ignores any epoch not newer
     * than its own: its report puts the replan's epoch above it, and the replan is not applied until it applies that.
     */
    @Test
    void replan_waitingForWatchers_isNotAppliedByAGatewayAtAnEpochOfAnEarlierRouter() throws Exception {
        watch("gw-1", new CopyOnWriteArrayList<>(), new CompletableFuture<>());
        StreamObserver<ReportRoutesRequest> reports = openReport(new CompletableFuture<>());
        reports.onNext(ReportRoutesRequest.newBuilder().setSource("gw-1").setPlacementEpoch(57).build());
        await().atMost(Duration.ofSeconds(10)).until(() -> Long.valueOf(57).equals(watchers.watchers().get("gw-1")));
        ReplanResponse r = RouterServiceGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS)
                .replan(ReplanRequest.newBuilder().setWaitForWatchers(true).setWatchersTimeoutMs(300).build());
        assertThat(r.getEpoch()).isEqualTo(58);
        assertThat(r.getApplied()).isFalse();
        assertThat(r.getUnappliedWatchersList()).containsExactly("gw-1");
        reports.onCompleted();
    }

    @Test
    void replan_watchersTimeoutAboveTenMinutes_isInvalidArgument_namingTheField_andPlansNothing() {
        long before = coordinator.currentEpoch();
        var stub = RouterServiceGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS);
        assertThatThrownBy(() -> stub.replan(ReplanRequest.newBuilder().setWaitForWatchers(true)
                .setWatchersTimeoutMs(600_001).build()))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                    assertThat(e.getStatus().getDescription()).isEqualTo(
                            "watchers_timeout_ms: 600001 ms is more than the most, 600000 (10 minutes)");
                });
        assertThatThrownBy(() -> stub.replan(ReplanRequest.newBuilder().setWaitForWatchers(true)
                .setWatchersTimeoutMs(-1).build()))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> assertThat(e.getStatus().getDescription())
                        .startsWith("watchers_timeout_ms: 4294967295 ms"));
        assertThat(coordinator.currentEpoch()).isEqualTo(before);
    }
}
