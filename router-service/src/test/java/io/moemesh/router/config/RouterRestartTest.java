package io.moemesh.router.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.StreamObserver;
import io.moemesh.proto.router.v1.DescribeRouterRequest;
import io.moemesh.proto.router.v1.DescribeRouterResponse;
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
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.router.RouterServiceApplication;
import io.moemesh.router.coordination.InstanceSetFollower;
import io.moemesh.router.coordination.PlacementCoordinator;
import io.moemesh.router.support.FakeExpertService;
import io.moemesh.router.support.RouterTestMesh;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.settings.SettingRefusedException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.boot.test.system.CapturedOutput;
import org.springframework.boot.test.system.OutputCaptureExtension;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * Whole Spring contexts of the router: snapshots across a restart, a stop while a gateway holds its streams, and
 * settings refused at startup.
 */
class RouterRestartTest {
    final List<FakeExpertService> experts = List.of(new FakeExpertService(RouterTestMesh.certs(), "expert-0"),
            new FakeExpertService(RouterTestMesh.certs(), "expert-1"));
    @TempDir
    Path stateDir;

    @AfterEach
    void stop() {
        experts.forEach(FakeExpertService::close);
    }

    ConfigurableApplicationContext run(String... extra) {
        List<String> args = new ArrayList<>(RouterTestMesh.args(stateDir, experts));
        args.addAll(List.of(extra));
        return new SpringApplicationBuilder(RouterServiceApplication.class).run(args.toArray(String[]::new));
    }

    static <T> T withStub(ConfigurableApplicationContext ctx, java.util.function.Function<RouterServiceGrpc.RouterServiceStub, T> body)
            throws InterruptedException {
        ManagedChannel ch = RouterTestMesh.channel(ctx.getBean(GrpcServerLifecycle.class).port());
        try {
            return body.apply(RouterServiceGrpc.newStub(ch));
        } finally {
            ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    static DescribeRouterResponse describe(ConfigurableApplicationContext ctx) throws InterruptedException {
        ManagedChannel ch = RouterTestMesh.channel(ctx.getBean(GrpcServerLifecycle.class).port());
        try {
            return RouterServiceGrpc.newBlockingStub(ch).withDeadlineAfter(30, TimeUnit.SECONDS)
                    .describeRouter(DescribeRouterRequest.getDefaultInstance());
        } finally {
            ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    static HealthCheckResponse.ServingStatus health(ConfigurableApplicationContext ctx) throws InterruptedException {
        ManagedChannel ch = RouterTestMesh.channel(ctx.getBean(GrpcServerLifecycle.class).port());
        try {
            return HealthGrpc.newBlockingStub(ch).withDeadlineAfter(30, TimeUnit.SECONDS)
                    .check(HealthCheckRequest.getDefaultInstance()).getStatus();
        } finally {
            ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    static ReplanResponse replan(ConfigurableApplicationContext ctx) throws InterruptedException {
        ManagedChannel ch = RouterTestMesh.operatorChannel(ctx.getBean(GrpcServerLifecycle.class).port());
        try {
            return RouterServiceGrpc.newBlockingStub(ch).withDeadlineAfter(30, TimeUnit.SECONDS)
                    .replan(ReplanRequest.getDefaultInstance());
        } finally {
            ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    /** 40 tokens of one request, each through all 4 layers. */
    static long report(ConfigurableApplicationContext ctx) throws Exception {
        return withStub(ctx, stub -> {
            CompletableFuture<ReportRoutesResponse> answer = new CompletableFuture<>();
            StreamObserver<ReportRoutesRequest> s = stub.reportRoutes(new StreamObserver<>() {
                @Override
                public void onNext(ReportRoutesResponse r) {
                    answer.complete(r);
                }

                @Override
                public void onError(Throwable t) {
                    answer.completeExceptionally(t);
                }

                @Override
                public void onCompleted() {
                }
            });
            ReportRoutesRequest.Builder msg = ReportRoutesRequest.newBuilder().setSource("gw-0").setPlacementEpoch(1);
            for (int t = 0; t < 40; t++) {
                TokenRoute.Builder route = TokenRoute.newBuilder().setPosition(t).setTokenId(t % 7);
                for (int l = 0; l < 4; l++) {
                    route.addLayers(LayerRoute.newBuilder().setLayer(l).addExperts((t + l) % 8).addExperts((t + l + 3) % 8)
                            .addWeights(0.6f).addWeights(0.2f));
                }
                msg.addSamples(RouteSample.newBuilder().setRequestId("req").setRoute(route));
            }
            s.onNext(msg.build());
            s.onCompleted();
            return answer.orTimeout(30, TimeUnit.SECONDS).join().getAccepted();
        });
    }

    static void awaitEpoch(ConfigurableApplicationContext ctx, long epoch) {
        await().atMost(Duration.ofSeconds(30)).until(() -> describe(ctx).getPlacementEpoch() == epoch);
    }

    @Test
    void restart_continuesAtTheEpochWithTheRouteStatistics_andTheNextReplanPlansFromThem() throws Exception {
        try (ConfigurableApplicationContext first = run()) {
            awaitEpoch(first, 1);
            assertThat(report(first)).isEqualTo(40);
            ReplanResponse r = replan(first);
            // 40 routes ≥ min-routes-to-plan 20: the configured planner, scored on the window.
            assertThat(r.getPlanner()).isEqualTo("affinity");
            assertThat(r.getEpoch()).isEqualTo(2);
            assertThat(r.getSummary().getRoutesScored()).isEqualTo(40);
            assertThat(r.getSummary().getFanOut()).isBetween(1.0, 2.0);
        }
        int loadsBefore = experts.get(0).loads.size();
        try (ConfigurableApplicationContext second = run()) {
            awaitEpoch(second, 2);
            DescribeRouterResponse d = describe(second);
            assertThat(d.getRoutesSeen()).isEqualTo(40);
            assertThat(d.getRoutesInWindow()).isEqualTo(40);
            // The instances hold epoch 2 already: the restored epoch is only PREPAREd again (a no-op where served,
            // an instance's experts back where it restarted too), nothing else loaded.
            assertThat(experts.get(0).loads.subList(loadsBefore, experts.get(0).loads.size()))
                    .allSatisfy(l -> assertThat(l.epoch()).isEqualTo(2));
            assertThat(experts).allSatisfy(e -> assertThat(e.served()).isEqualTo(2));
            assertThat(replan(second).getEpoch()).isEqualTo(3);
        }
    }

    @Test
    void start_withoutItsStateFolder_publishesAboveTheEpochTheInstancesServe_notEpoch1() throws Exception {
        // A router pod recreated with an empty state folder (the chart's emptyDir) while the instances serve its
        // predecessor's epochs: they refuse any older PREPARE, so this run's first epoch is 8, not 1 forever.
        experts.get(0).serve(7, List.of());
        experts.get(1).serve(6, List.of());
        try (ConfigurableApplicationContext ctx = run()) {
            awaitEpoch(ctx, 8);
            await().atMost(Duration.ofSeconds(30))
                    .until(() -> health(ctx) == HealthCheckResponse.ServingStatus.SERVING);
            assertThat(experts).allSatisfy(e -> assertThat(e.served()).isEqualTo(8));
        }
    }

    @Test
    void startup_withInstancesUnreachable_retries_andPublishesEpoch1OnceTheyAnswer() throws Exception {
        experts.get(1).failing = true;
        try (ConfigurableApplicationContext ctx = run()) {
            await().atMost(Duration.ofSeconds(30)).until(() -> experts.get(0).loads.size() >= 2);
            assertThat(describe(ctx).getPlacementEpoch()).isZero();
            assertThat(health(ctx)).isEqualTo(HealthCheckResponse.ServingStatus.NOT_SERVING);
            experts.get(1).failing = false;
            // Every retry is the same even deal, so it keeps epoch 1 (no climbing while an instance is down).
            await().atMost(Duration.ofSeconds(30)).until(() -> describe(ctx).getPlacementEpoch() == 1);
            await().atMost(Duration.ofSeconds(30))
                    .until(() -> health(ctx) == HealthCheckResponse.ServingStatus.SERVING);
            assertThat(experts.get(0).loads).allSatisfy(l -> assertThat(l.epoch()).isEqualTo(1));
            assertThat(experts.get(1).loads).singleElement().satisfies(l -> assertThat(l.epoch()).isEqualTo(1));
        }
    }

    /**
     * Stopping a router that a gateway watches and reports to: the gateway reopens its watch 200 ms after it ends and
     * keeps its report stream open (a minute at a time). Neither may hold the gRPC server's graceful stop for its
     * 30 s grace: the router refuses new streams before it ends the open ones.
     */
    @Test
    void stop_whileAGatewayWatchesAndReports_endsTheStreams_longBeforeTheGrace() throws Exception {
        ConfigurableApplicationContext ctx = run("--moemesh.router.shutdown-grace=30s");
        ManagedChannel ch = RouterTestMesh.channel(ctx.getBean(GrpcServerLifecycle.class).port());
        ScheduledExecutorService gateway = Executors.newSingleThreadScheduledExecutor();
        AtomicBoolean reopening = new AtomicBoolean(true);
        List<Status> watchEnds = new CopyOnWriteArrayList<>();
        try {
            awaitEpoch(ctx, 1);
            Runnable[] openWatch = new Runnable[1];
            openWatch[0] = () -> RouterServiceGrpc.newStub(ch).watchPlacement(WatchPlacementRequest.newBuilder()
                    .setWatcherId("gw-0").build(), new StreamObserver<>() {
                        @Override
                        public void onNext(WatchPlacementResponse r) {
                        }

                        @Override
                        public void onError(Throwable t) {
                            watchEnds.add(Status.fromThrowable(t));
                            if (reopening.get()) {
                                gateway.schedule(openWatch[0], 200, TimeUnit.MILLISECONDS);
                            }
                        }

                        @Override
                        public void onCompleted() {
                            onError(new IllegalStateException("completed"));
                        }
                    });
            openWatch[0].run();
            CompletableFuture<Throwable> reportEnd = new CompletableFuture<>();
            RouterServiceGrpc.newStub(ch).reportRoutes(new StreamObserver<>() {
                @Override
                public void onNext(ReportRoutesResponse r) {
                    reportEnd.complete(null);
                }

                @Override
                public void onError(Throwable t) {
                    reportEnd.complete(t);
                }

                @Override
                public void onCompleted() {
                }
            }).onNext(ReportRoutesRequest.newBuilder().setSource("gw-0").setPlacementEpoch(1).build());
            await().atMost(Duration.ofSeconds(30)).until(() -> describe(ctx).getWatchersList().stream()
                    .anyMatch(w -> w.getWatcherId().equals("gw-0") && w.getAppliedEpoch() == 1));

            CompletableFuture.runAsync(ctx::close).get(20, TimeUnit.SECONDS);

            assertThat(Status.fromThrowable(reportEnd.get(10, TimeUnit.SECONDS)).getCode())
                    .isEqualTo(Status.Code.UNAVAILABLE);
            assertThat(watchEnds).isNotEmpty().allSatisfy(st -> assertThat(st.getCode())
                    .isEqualTo(Status.Code.UNAVAILABLE));
        } finally {
            reopening.set(false);
            gateway.shutdownNow();
            ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            ctx.close();
        }
    }

    /**
     * The router's stop refuses WatchPlacement and ReportRoutes one phase before the gRPC server's own stop. From that
     * moment health says NOT_SERVING (a gateway reopening its watch every 200 ms would otherwise be refused by a router
     * that says SERVING), an epoch a Replan publishes meanwhile does not turn it back, and a start after the stop
     * serves again.
     */
    @Test
    void backgroundStop_turnsHealthNotServing_aReplanDuringTheStopKeepsIt_andAStartServesAgain() throws Exception {
        try (ConfigurableApplicationContext ctx = run()) {
            awaitEpoch(ctx, 1);
            await().atMost(Duration.ofSeconds(30))
                    .until(() -> health(ctx) == HealthCheckResponse.ServingStatus.SERVING);
            RouterBackground background = ctx.getBean(RouterBackground.class);

            background.stop();
            assertThat(health(ctx)).isEqualTo(HealthCheckResponse.ServingStatus.NOT_SERVING);
            assertThat(replan(ctx).getEpoch()).isEqualTo(2);
            assertThat(health(ctx)).as("after an epoch published during the stop")
                    .isEqualTo(HealthCheckResponse.ServingStatus.NOT_SERVING);

            background.start();
            assertThat(health(ctx)).isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
            // It follows the instance set again: a set that changes after the start is placed on.
            PlacementCoordinator coordinator = ctx.getBean(PlacementCoordinator.class);
            ctx.getBean(InstanceSetFollower.class).offer(coordinator.instances().subList(0, 1));
            awaitEpoch(ctx, 3);
            assertThat(coordinator.instances()).extracting(Instance::getId).containsExactly("expert-0");
        }
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "--moemesh.router.replicas=3 | moemesh.router.replicas must be in [1, 2] for 2 instances, got 3",
            "--moemesh.router.slots-per-instance=3 | moemesh.router.slots-per-instance 3 is too small: the even deal of 8 experts",
            "--moemesh.router.planner=best | moemesh.router.planner must be one of affinity, affinity-stats, round-robin, got \"best\"",
            "--moemesh.router.predictor=oracle | moemesh.router.predictor must be one of learned,",
            "--moemesh.router.auto-replan-period=1s | moemesh.router.auto-replan-period must be 0 (off) or >= 10s, got PT1S",
            "--moemesh.router.memory-budget-bytes=1000 | moemesh.router.slots-per-instance / memory-budget-bytes:",
            "--moemesh.router.max-inbound-message-bytes=1 | moemesh.router.max-inbound-message-bytes must be >= 65536, got 1",
            "--moemesh.router.max-inbound-message-bytes=65535 | moemesh.router.max-inbound-message-bytes must be >= 65536, got 65535",
            "--moemesh.router.shutdown-grace=-1s | moemesh.router.shutdown-grace must be >= 0, got PT-1S"})
    void startup_withSettingsThatCannotWork_fails_namingTheProperty(String arg, String message) {
        assertThatThrownBy(() -> run(arg).close()).rootCause().isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(message);
    }

    /**
     * A setting a bean refuses (the budget, from the model and the instances) ends the start with Spring Boot's
     * failure report, as one the settings record refuses does: not with "Application run failed" and the bean
     * creation exceptions above the refusal.
     */
    @Test
    @ExtendWith(OutputCaptureExtension.class)
    void startup_withReplicasAboveTheInstances_endsWithTheFailureReport_namingTheSetting_withoutAStackTrace(
            CapturedOutput output) {
        assertThatThrownBy(() -> run("--moemesh.router.replicas=3").close()).rootCause()
                .isInstanceOf(SettingRefusedException.class);

        assertThat(output.getAll()).contains("APPLICATION FAILED TO START")
                .containsPattern("Description:\\s+moemesh\\.router\\.replicas must be in \\[1, 2] for 2 instances, "
                        + "got 3")
                .containsPattern("Action:\\s+Change moemesh\\.router\\.replicas \\(environment variable "
                        + "MOEMESH_ROUTER_REPLICAS\\)")
                .doesNotContain("Application run failed").doesNotContain("Caused by:");
        assertThat(output.getAll().lines().filter(line -> line.startsWith("\tat "))).as("stack frames").isEmpty();
    }

    @Test
    void startup_withoutInstances_fails_namingTheProperties() {
        assertThatThrownBy(() -> new SpringApplicationBuilder(RouterServiceApplication.class).run(
                RouterTestMesh.args(stateDir, List.of()).toArray(String[]::new)).close())
                .rootCause().isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("moemesh.router.instances is empty and instances-from is not set");
    }
}
