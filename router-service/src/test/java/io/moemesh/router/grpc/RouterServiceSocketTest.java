package io.moemesh.router.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.StreamObserver;
import io.moemesh.proto.router.v1.DescribeRouterRequest;
import io.moemesh.proto.router.v1.LayerRoute;
import io.moemesh.proto.router.v1.PredictPathsRequest;
import io.moemesh.proto.router.v1.PredictPathsResponse;
import io.moemesh.proto.router.v1.ReplanRequest;
import io.moemesh.proto.router.v1.ReplanResponse;
import io.moemesh.proto.router.v1.ReportRoutesRequest;
import io.moemesh.proto.router.v1.ReportRoutesResponse;
import io.moemesh.proto.router.v1.RouteSample;
import io.moemesh.proto.router.v1.RouterServiceGrpc;
import io.moemesh.proto.router.v1.SequenceQuery;
import io.moemesh.proto.router.v1.TokenRoute;
import io.moemesh.proto.router.v1.WatchPlacementRequest;
import io.moemesh.proto.router.v1.WatchPlacementResponse;
import io.moemesh.router.RouterServiceApplication;
import io.moemesh.router.reports.RouteBook;
import io.moemesh.router.support.FakeExpertService;
import io.moemesh.router.support.RouterTestMesh;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.placement.PlacementFiles;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.ParameterizedTest;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * The router-service in a real Spring Boot context, over real sockets with mutual TLS, placing on two fake
 * expert-services that implement LoadAssignment.
 */
@SpringBootTest(classes = RouterServiceApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class RouterServiceSocketTest {
    static final List<FakeExpertService> EXPERTS = List.of(new FakeExpertService(RouterTestMesh.certs(), "expert-0"),
            new FakeExpertService(RouterTestMesh.certs(), "expert-1"));
    static final Path STATE_DIR;

    static {
        try {
            STATE_DIR = Files.createTempDirectory(Files.createDirectories(Path.of("target")), "router-state");
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry registry) {
        for (String arg : RouterTestMesh.args(STATE_DIR, EXPERTS)) {
            String kv = arg.substring(2);
            int eq = kv.indexOf('=');
            registry.add(kv.substring(0, eq), () -> kv.substring(eq + 1));
        }
    }

    @Autowired
    GrpcServerLifecycle server;
    @Autowired
    RouteBook book;
    @LocalManagementPort
    int managementPort;
    ManagedChannel channel;
    RouterServiceGrpc.RouterServiceBlockingStub stub;
    /** As the operator identity {@code placer}: the only one Replan accepts by default. */
    ManagedChannel operatorChannel;
    RouterServiceGrpc.RouterServiceBlockingStub operator;

    @BeforeEach
    void connect() {
        channel = RouterTestMesh.channel(server.port());
        stub = RouterServiceGrpc.newBlockingStub(channel).withDeadlineAfter(1, TimeUnit.MINUTES);
        operatorChannel = RouterTestMesh.operatorChannel(server.port());
        operator = RouterServiceGrpc.newBlockingStub(operatorChannel).withDeadlineAfter(1, TimeUnit.MINUTES);
        EXPERTS.forEach(e -> {
            e.failing = false;
            e.gate.countDown();
        });
        await().atMost(Duration.ofSeconds(30)).until(() -> stub.describeRouter(DescribeRouterRequest.getDefaultInstance())
                .getPlacementEpoch() >= 1 && !stub.describeRouter(DescribeRouterRequest.getDefaultInstance()).getReplanRunning());
    }

    @AfterEach
    void disconnect() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        operatorChannel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    @AfterAll
    static void stopExperts() {
        EXPERTS.forEach(FakeExpertService::close);
    }

    long epoch() {
        return stub.describeRouter(DescribeRouterRequest.getDefaultInstance()).getPlacementEpoch();
    }

    @Test
    void startup_loadsEpoch1OntoEveryInstance_asTheRouterIdentity_thenReportsServing() {
        for (FakeExpertService e : EXPERTS) {
            assertThat(e.loads).filteredOn(l -> l.epoch() == 1).singleElement()
                    .satisfies(l -> assertThat(l.caller()).isEqualTo("router"))
                    // 8 experts × 4 layers over 2 instances, one replica.
                    .satisfies(l -> assertThat(l.experts()).isEqualTo(16));
        }
        assertThat(HealthGrpc.newBlockingStub(channel).check(HealthCheckRequest.getDefaultInstance()).getStatus())
                .isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
    }

    @Test
    void replan_publishesTheNextEpochToAWatchStream_andWritesPlacementJson_andWaitsForTheWatcherToApplyIt()
            throws Exception {
        long before = epoch();
        LinkedBlockingQueue<Long> seen = new LinkedBlockingQueue<>();
        // A gateway: watches placements and reports each epoch applied through ReportRoutes.
        StreamObserver<ReportRoutesRequest> reports = RouterServiceGrpc.newStub(channel)
                .reportRoutes(new Noop<>());
        RouterServiceGrpc.newStub(channel).watchPlacement(WatchPlacementRequest.newBuilder().setWatcherId("gw-1").build(),
                new Noop<>() {
                    @Override
                    public void onNext(WatchPlacementResponse r) {
                        seen.add(r.getPlacement().getEpoch());
                        synchronized (reports) {
                            reports.onNext(ReportRoutesRequest.newBuilder().setSource("gw-1")
                                    .setPlacementEpoch(r.getPlacement().getEpoch()).build());
                        }
                    }
                });
        assertThat(seen.poll(30, TimeUnit.SECONDS)).isEqualTo(before);
        ReplanResponse r = operator.replan(ReplanRequest.newBuilder().setWaitForWatchers(true).build());
        assertThat(r.getEpoch()).isEqualTo(before + 1);
        assertThat(r.getApplied()).isTrue();
        assertThat(r.getUnappliedWatchersList()).isEmpty();
        assertThat(r.getSummary().getInstances()).isEqualTo(2);
        // The even deal (too few routes) with one replica: 4 experts per instance per layer, no extra copies.
        assertThat(r.getSummary().getMaxSlotsUsed()).isEqualTo(4);
        assertThat(r.getSummary().getExtraReplicas()).isZero();
        assertThat(seen.poll(30, TimeUnit.SECONDS)).isEqualTo(before + 1);
        assertThat(PlacementFiles.read(STATE_DIR.resolve("placement.json")).getEpoch()).isEqualTo(before + 1);
        assertThat(EXPERTS).allSatisfy(e -> assertThat(e.loads).anyMatch(l -> l.epoch() == before + 1));
        synchronized (reports) {
            reports.onCompleted();
        }
    }

    @Test
    void replan_whoseLoadFailsOnAnInstance_isAborted_namingIt_andTheEpochIsNotPublished() {
        long before = epoch();
        EXPERTS.get(1).failing = true;
        assertThatThrownBy(() -> operator.replan(ReplanRequest.getDefaultInstance()))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.ABORTED);
                    assertThat(e.getStatus().getDescription()).contains("expert-1 (" + EXPERTS.get(1).endpoint()
                            + "): UNAVAILABLE disk on fire").contains("epoch " + before + " stays current");
                });
        assertThat(epoch()).isEqualTo(before);
        assertThat(PlacementFiles.read(STATE_DIR.resolve("placement.json")).getEpoch()).isEqualTo(before);
        EXPERTS.get(1).failing = false;
        // The retry is the same assignment (the even deal): it keeps the unpublished epoch number.
        assertThat(operator.replan(ReplanRequest.getDefaultInstance()).getEpoch()).isEqualTo(before + 1);
    }

    @Test
    void replan_publishMillis_isTheTimeToPublication_notToTheEndOfTheCommitsAfterIt() throws Exception {
        long before = epoch();
        EXPERTS.get(0).commitGate = new CountDownLatch(1);
        long sent = System.nanoTime();
        CompletableFuture<ReplanResponse> answer = CompletableFuture.supplyAsync(
                () -> operator.replan(ReplanRequest.getDefaultInstance()));
        try {
            await().atMost(Duration.ofSeconds(30)).until(() -> epoch() == before + 1);
            // Published; expert-0's COMMIT is held for 2 s more, and the answer waits for the COMMITs.
            await().during(Duration.ofSeconds(2)).atMost(Duration.ofSeconds(3)).until(() -> !answer.isDone());
        } finally {
            EXPERTS.get(0).commitGate.countDown();
        }
        ReplanResponse r = answer.get(60, TimeUnit.SECONDS);
        long elapsedMillis = (System.nanoTime() - sent) / 1_000_000;
        assertThat(r.getEpoch()).isEqualTo(before + 1);
        assertThat(r.getPublishMillis()).isLessThan(elapsedMillis - 2000);
    }

    @Test
    void replan_whileOneRuns_isFailedPrecondition() throws Exception {
        CountDownLatch gate = new CountDownLatch(1);
        EXPERTS.get(0).gate = gate;
        CompletableFuture<ReplanResponse> first = CompletableFuture.supplyAsync(
                () -> operator.replan(ReplanRequest.getDefaultInstance()));
        await().atMost(Duration.ofSeconds(30)).until(() -> stub.describeRouter(DescribeRouterRequest.getDefaultInstance())
                .getReplanRunning());
        assertThatThrownBy(() -> operator.replan(ReplanRequest.getDefaultInstance()))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
                    assertThat(e.getStatus().getDescription()).contains("a replan is already running");
                });
        gate.countDown();
        assertThat(first.get(30, TimeUnit.SECONDS).getEpoch()).isPositive();
    }

    @Test
    void replan_fromAMeshMemberThatIsNoOperator_isPermissionDenied_namingItsIdentity_andPublishesNothing() {
        long before = epoch();
        assertThatThrownBy(() -> stub.replan(ReplanRequest.getDefaultInstance()))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.PERMISSION_DENIED);
                    assertThat(e.getStatus().getDescription()).contains("spiffe://moemesh/gateway")
                            .contains("moemesh.router.operator-identities").contains("[placer]");
                });
        assertThat(epoch()).isEqualTo(before);
        // the same call as the operator identity is accepted
        assertThat(operator.replan(ReplanRequest.getDefaultInstance()).getEpoch()).isEqualTo(before + 1);
    }

    @Test
    void replan_withAnUnknownPlanner_isInvalidArgument_listingThePlanners() {
        assertThatThrownBy(() -> operator.replan(ReplanRequest.newBuilder().setPlanner("magic").build()))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                    assertThat(e.getStatus().getDescription()).startsWith("planner: must be one of affinity");
                });
    }

    @Test
    void reportRoutes_withAnUnknownExpert_endsTheStreamWithInvalidArgument_namingTheField() throws Exception {
        long seenBefore = stub.describeRouter(DescribeRouterRequest.getDefaultInstance()).getRoutesSeen();
        CompletableFuture<Throwable> error = new CompletableFuture<>();
        StreamObserver<ReportRoutesRequest> s = RouterServiceGrpc.newStub(channel).reportRoutes(new Noop<>() {
            @Override
            public void onError(Throwable t) {
                error.complete(t);
            }
        });
        s.onNext(ReportRoutesRequest.newBuilder().setSource("gw-2").addSamples(sample(1, 2))
                .addSamples(sample(3, 9)).build());
        assertThat(error.get(30, TimeUnit.SECONDS)).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(e.getStatus().getDescription())
                    .isEqualTo("samples[1].route.layers[0].experts[1]: expert 9 is not in [0, 8) (the model's routed experts)");
        });
        assertThat(stub.describeRouter(DescribeRouterRequest.getDefaultInstance()).getRoutesSeen()).isEqualTo(seenBefore);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "blank source   |      | 0.5 | source: must name the reporting gateway",
            "sample rate 2  | gw-4 | 2   | sample_rate: 2.0 is not in (0, 1]",
    })
    void reportRoutes_refusedAsAWhole_countsItsSamplesAsDropped(String name, String source, float rate,
                                                                 String message) throws Exception {
        long droppedBefore = book.dropped();
        CompletableFuture<Throwable> error = new CompletableFuture<>();
        StreamObserver<ReportRoutesRequest> s = RouterServiceGrpc.newStub(channel).reportRoutes(new Noop<>() {
            @Override
            public void onError(Throwable t) {
                error.complete(t);
            }
        });
        s.onNext(ReportRoutesRequest.newBuilder().setSource(source == null ? "" : source).setSampleRate(rate)
                .addSamples(sample(1, 2)).addSamples(sample(4, 5)).addSamples(sample(0, 3)).build());
        assertThat(error.get(30, TimeUnit.SECONDS)).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(e.getStatus().getDescription()).startsWith(message);
        });
        assertThat(book.dropped()).isEqualTo(droppedBefore + 3);
    }

    @Test
    void reportRoutes_ingestsEveryMessage_andAnswersTheCountOnHalfClose() throws Exception {
        CompletableFuture<ReportRoutesResponse> answer = new CompletableFuture<>();
        StreamObserver<ReportRoutesRequest> s = RouterServiceGrpc.newStub(channel).reportRoutes(new Noop<>() {
            @Override
            public void onNext(ReportRoutesResponse r) {
                answer.complete(r);
            }

            @Override
            public void onError(Throwable t) {
                answer.completeExceptionally(t);
            }
        });
        for (int i = 0; i < 3; i++) {
            s.onNext(ReportRoutesRequest.newBuilder().setSource("gw-3").setSampleRate(0.5f).addSamples(sample(1, 2))
                    .addSamples(sample(4, 5)).build());
        }
        s.onCompleted();
        assertThat(answer.get(30, TimeUnit.SECONDS).getAccepted()).isEqualTo(6);
    }

    @Test
    void predictPaths_returnsTwoKExpertsPerPositionAndLayerByDefault_andKWhenAsked() {
        SequenceQuery q = SequenceQuery.newBuilder().setRequestId("req-1").addTokenIds(5).addTokenIds(6)
                .setFirstPosition(10).addObserved(TokenRoute.newBuilder().setPosition(10).setTokenId(5)
                        .addLayers(LayerRoute.newBuilder().setLayer(0).addExperts(1).addExperts(2)))
                .build();
        PredictPathsResponse r = stub.predictPaths(PredictPathsRequest.newBuilder().addSequences(q).setFromLayer(1)
                .setLookaheadLayers(2).build());
        assertThat(r.getPredictor()).isEqualTo("learned");
        assertThat(r.getSequences(0).getRequestId()).isEqualTo("req-1");
        assertThat(r.getSequences(0).getLayersList()).extracting(l -> l.getLayer()).containsExactly(1, 2);
        assertThat(r.getSequences(0).getLayersList()).allSatisfy(l -> {
            assertThat(l.getPositionsList()).extracting(p -> p.getPosition()).containsExactly(10, 11);
            assertThat(l.getPositionsList()).allSatisfy(p -> {
                assertThat(p.getExpertsList()).hasSize(4).doesNotHaveDuplicates().allMatch(e -> e >= 0 && e < 8);
                assertThat(p.getScoresList()).hasSize(4).isSortedAccordingTo((a, b) -> Float.compare(b, a));
            });
        });
        PredictPathsResponse k = stub.predictPaths(PredictPathsRequest.newBuilder().addSequences(q).setMaxExperts(2)
                .build());
        assertThat(k.getSequences(0).getLayersList()).hasSize(4).allSatisfy(l -> assertThat(l.getPositionsList())
                .allSatisfy(p -> assertThat(p.getExpertsList()).hasSize(2)));
    }

    @Test
    void predictPaths_withALayerOutsideTheModel_isInvalidArgument_namingTheField() {
        assertThatThrownBy(() -> stub.predictPaths(PredictPathsRequest.newBuilder().setFromLayer(4)
                .addSequences(SequenceQuery.newBuilder().addTokenIds(1)).build()))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                    assertThat(e.getStatus().getDescription()).isEqualTo("from_layer: layer 4 is not in [0, 4)");
                });
        assertThatThrownBy(() -> stub.predictPaths(PredictPathsRequest.getDefaultInstance()))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> assertThat(e.getStatus().getDescription())
                        .startsWith("sequences: 0 sequences"));
    }

    /** Positions are uint32: a sequence whose last token would be past 4294967295 wrapped to position 0. */
    @Test
    void predictPaths_sequencePastTheLargestPosition_isInvalidArgument_namingFirstPosition() {
        SequenceQuery fits = SequenceQuery.newBuilder().setRequestId("last").addTokenIds(5).setFirstPosition(-1).build();
        SequenceQuery wraps = fits.toBuilder().setRequestId("wraps").addTokenIds(6).build();

        PredictPathsResponse r = stub.predictPaths(PredictPathsRequest.newBuilder().addSequences(fits).build());
        assertThat(r.getSequences(0).getLayersList()).allSatisfy(l -> assertThat(l.getPositionsList())
                .extracting(p -> Integer.toUnsignedLong(p.getPosition())).containsExactly(4294967295L));
        assertThatThrownBy(() -> stub.predictPaths(PredictPathsRequest.newBuilder().addSequences(fits)
                .addSequences(wraps).build()))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                    assertThat(e.getStatus().getDescription()).isEqualTo("sequences[1].first_position: 4294967295 "
                            + "with 2 tokens puts the last at 4294967296, past the largest position 4294967295 (uint32)");
                });
    }

    @Test
    void tokenIdAtOrAboveTheModelsVocabularySize_isInvalidArgument_namingTheField_inBothRpcs() throws Exception {
        // The test model's config.json has vocab_size 512.
        CompletableFuture<Throwable> error = new CompletableFuture<>();
        StreamObserver<ReportRoutesRequest> s = RouterServiceGrpc.newStub(channel).reportRoutes(new Noop<>() {
            @Override
            public void onError(Throwable t) {
                error.complete(t);
            }
        });
        RouteSample beyond = sample(1, 2).toBuilder().setRoute(sample(1, 2).getRoute().toBuilder().setTokenId(512)).build();
        s.onNext(ReportRoutesRequest.newBuilder().setSource("gw-5").addSamples(beyond).build());
        assertThat(error.get(30, TimeUnit.SECONDS)).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(e.getStatus().getDescription()).startsWith("samples[0].route.token_id: 512 is not a token id");
        });
        assertThatThrownBy(() -> stub.predictPaths(PredictPathsRequest.newBuilder()
                .addSequences(SequenceQuery.newBuilder().addTokenIds(511).addTokenIds(512)).build()))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                    assertThat(e.getStatus().getDescription())
                            .startsWith("sequences[0].token_ids[1]: 512 is not a token id (in [0, 512)");
                });
    }

    @Test
    void watchPlacement_withoutAWatcherId_isInvalidArgument() {
        var it = RouterServiceGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS)
                .watchPlacement(WatchPlacementRequest.getDefaultInstance());
        assertThatThrownBy(it::hasNext).isInstanceOfSatisfying(StatusRuntimeException.class,
                e -> assertThat(e.getStatus().getDescription()).startsWith("watcher_id: must name"));
    }

    @Test
    void prometheus_exposesTheRouterMetrics_withOneLoadSeriesPerInstance() throws Exception {
        HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                URI.create("http://127.0.0.1:" + managementPort + "/actuator/prometheus")).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(r.body()).contains("moemesh_router_placement_epoch ", "moemesh_router_replan_seconds_count",
                "moemesh_router_replan_failures_total", "moemesh_router_prediction_recall{ahead=\"1\",guesses=\"k\"}",
                "moemesh_router_prediction_recall{ahead=\"1\",guesses=\"2k\"}", "moemesh_router_routes_ingested_total",
                "moemesh_router_routes_dropped_total", "moemesh_router_routes_window",
                "moemesh_router_instance_load{instance=\"expert-0\"}", "moemesh_router_instance_load{instance=\"expert-1\"}",
                "moemesh_router_expert_load_hottest_share", "moemesh_router_expert_load_max_over_mean");
    }

    static RouteSample sample(int first, int second) {
        return RouteSample.newBuilder().setRequestId("r").setRoute(TokenRoute.newBuilder().setTokenId(3)
                .addLayers(LayerRoute.newBuilder().setLayer(0).addExperts(first).addExperts(second))
                .addLayers(LayerRoute.newBuilder().setLayer(1).addExperts(second).addExperts(first))).build();
    }

    static class Noop<T> implements StreamObserver<T> {
        @Override
        public void onNext(T value) {
        }

        @Override
        public void onError(Throwable t) {
        }

        @Override
        public void onCompleted() {
        }
    }
}
