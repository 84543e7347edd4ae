package io.moemesh.gateway.routing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.micrometer.core.instrument.MeterRegistry;
import io.moemesh.gateway.dispatch.MeshExpertDispatch;
import io.moemesh.gateway.support.FakeExpertInstance;
import io.moemesh.gateway.support.TestCertificates;
import io.moemesh.gateway.support.TestRouter;
import io.moemesh.model.MoeModel;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepOutput;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.Generator;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.TokenListener;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.PromptIds;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.proto.router.v1.RouteSample;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.placement.EvenPlacement;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.system.CapturedOutput;
import org.springframework.boot.test.system.OutputCaptureExtension;
import org.springframework.boot.test.web.server.LocalManagementPort;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * A gateway that follows a router, end to end on real sockets with mutual TLS: a small router.v1 RouterService and
 * two expert-service stand-ins (Qwen2-MoE, shared expert included), no placement file. Before the router's first
 * epoch the gateway is not ready (its readiness naming the router) and refuses generations (503 / UNAVAILABLE, without
 * the router's address; a gRPC refusal carries the request id in its trailers); the first epoch makes
 * it serve; route reports carry the engine's own routes (without the shared expert) and the applied epoch, and an
 * epoch switch in the middle of a generation changes no token. A published epoch the gateway cannot apply makes it
 * not ready, naming the epoch, until a later one is applied.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@DirtiesContext
@ExtendWith(OutputCaptureExtension.class)
class GatewayFollowsRouterTest {
    private static final Metadata.Key<String> REQUEST_ID = Metadata.Key.of("x-request-id",
            Metadata.ASCII_STRING_MARSHALLER);
    private static final String MODEL = TestModels.QWEN2_MOE;
    private static final Duration WAIT = Duration.ofSeconds(60);
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newHttpClient();
    private static TestRouter router;
    private static List<FakeExpertInstance> experts;

    @Autowired
    GrpcServerLifecycle server;
    @Autowired
    MoeModel model;
    @Autowired
    MeshExpertDispatch dispatch;
    @Autowired
    io.moemesh.gateway.placement.PlacementSource placementSource;
    @Autowired
    MeterRegistry meters;
    @LocalServerPort
    int httpPort;
    @LocalManagementPort
    int managementPort;

    private ManagedChannel channel;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        router = new TestRouter();
        experts = IntStream.range(0, 2).mapToObj(i -> new FakeExpertInstance(TestModels.dir(MODEL),
                TestCertificates.credentials("expert-" + i).server())).toList();
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        TestCertificates.gatewayTls(r);
        r.add("moemesh.gateway.router.endpoint", router::endpoint);
        r.add("moemesh.gateway.router.watcher-id", () -> "gw-it");
        r.add("moemesh.gateway.router.report.sample-rate", () -> "1");
        r.add("moemesh.gateway.router.report.flush-interval", () -> "200ms");
        r.add("moemesh.gateway.router.reconnect.initial-backoff", () -> "50ms");
        r.add("moemesh.gateway.router.reconnect.max-backoff", () -> "500ms");
        r.add("moemesh.gateway.health.grpc-health-interval", () -> "100ms");
        r.add("moemesh.gateway.health.http-probe-interval", () -> "200ms");
    }

    @BeforeAll
    void connect() {
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
    }

    @AfterAll
    void close() {
        channel.shutdownNow();
        experts.forEach(FakeExpertInstance::close);
        router.close();
    }

    private Placement placement(long epoch, int replicas) {
        ModelConfig c = ModelConfigReader.read(TestModels.dir(MODEL));
        List<Instance> ins = IntStream.range(0, experts.size()).mapToObj(i -> Instance.newBuilder().setId("expert-" + i)
                .setEndpoint("127.0.0.1:" + experts.get(i).port()).build()).toList();
        return EvenPlacement.build(epoch, ins, c.numLayers(), c.numExperts(), c.hasSharedExpert(), replicas);
    }

    private ServingStatus grpcHealth() {
        return grpcHealth("");
    }

    private ServingStatus grpcHealth(String service) {
        return HealthGrpc.newBlockingStub(channel).withDeadlineAfter(5, TimeUnit.SECONDS)
                .check(HealthCheckRequest.newBuilder().setService(service).build()).getStatus();
    }

    private static HttpResponse<String> http(int port, String path, String postBody) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path));
        if (postBody != null) {
            b.header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(postBody));
        }
        try {
            return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    private long lastReportedEpoch() {
        return router.reports.isEmpty() ? -1 : router.reports.getLast().message().getPlacementEpoch();
    }

    private GenerateRequest request(int[] ids, int maxTokens, boolean trace) {
        return GenerateRequest.newBuilder().setTrace(trace)
                .setPromptIds(PromptIds.newBuilder().addAllTokenIds(IntStream.of(ids).boxed().toList()))
                .setSampling(io.moemesh.proto.gateway.v1.SamplingParams.newBuilder().setMaxTokens(maxTokens)
                        .setTemperature(0).setIgnoreEos(true)).build();
    }

    private int[] prompt(int n, int seed) {
        return IntStream.range(0, n).map(i -> 10 + (i * 31 + seed * 7) % (model.config().vocabSize() - 10)).toArray();
    }

    private List<Integer> reference(int[] inputIds, int maxTokens) {
        int[] out = new Generator(model.localEngine(), model.newCache(1024), 512)
                .generate(List.of(new GenerationRequest(inputIds, new SamplingParams(0, 1, 0, java.util.OptionalLong.empty(),
                        maxTokens, true), false)),
                        TokenListener.NONE).getFirst().generatedIds();
        return IntStream.of(out).boxed().toList();
    }

    @Test
    @Order(1)
    void beforeTheFirstEpoch_notReady_generationRefusedWithoutNamingTheRouter_itsIdInTheTrailers_thenServing(
            CapturedOutput output) {
        String why = "no expert placement yet: waiting for the router at " + router.endpoint();
        // A client is not told the router's address: only the readiness details (the management port) name it.
        String told = "no expert placement yet: the gateway is waiting for its first one; retry shortly";
        assertThat(grpcHealth()).isEqualTo(ServingStatus.NOT_SERVING);
        HttpResponse<String> readiness = http(managementPort, "/actuator/health/readiness", null);
        assertThat(readiness.statusCode()).isEqualTo(503);
        assertThat(JSON.readTree(readiness.body()).at("/components/experts/details/reason").asString()).isEqualTo(why);

        HttpResponse<String> refused = http(httpPort, "/v1/completions", JSON.writeValueAsString(Map.of("model", MODEL,
                "prompt", "hello", "max_tokens", 2)));
        assertThat(refused.statusCode()).isEqualTo(503);
        assertThat(refused.headers().firstValue("Retry-After")).contains("1");
        JsonNode error = JSON.readTree(refused.body()).at("/error");
        assertThat(error.at("/message").asString()).isEqualTo(told);
        assertThat(error.at("/code").asString()).isEqualTo("no_placement");
        assertThatThrownBy(() -> GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                .generate(request(prompt(4, 0), 2, false)).next()).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
                    assertThat(e.getStatus().getDescription()).isEqualTo(told);
                    // Refused before the first message, which echoes it: the id the server assigned is in the
                    // trailers, and it is the one the log names the refusal by (with the router's address).
                    String id = e.getTrailers().get(REQUEST_ID);
                    assertThat(id).matches("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}");
                    assertThat(output.getOut()).contains("request " + id + " failed: " + why);
                });
        assertThatThrownBy(() -> GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                .generate(request(prompt(4, 0), 2, false).toBuilder().setRequestId("mine-1").build()).next())
                .isInstanceOfSatisfying(StatusRuntimeException.class,
                        e -> assertThat(e.getTrailers().get(REQUEST_ID)).isEqualTo("mine-1"));
        await().atMost(WAIT).until(() -> !router.reports.isEmpty());
        assertThat(lastReportedEpoch()).as("reports say no epoch is applied").isZero();
        assertThat(router.watches).first().satisfies(w -> assertThat(w.getWatcherId()).isEqualTo("gw-it"));

        router.publish(placement(1, 1));
        await().atMost(WAIT).until(() -> grpcHealth() == ServingStatus.SERVING);
        assertThat(http(managementPort, "/actuator/health/readiness", null).statusCode()).isEqualTo(200);
        await().atMost(WAIT).until(() -> lastReportedEpoch() == 1);
        assertThat(meters.get("moemesh_gateway_placement_epoch").gauge().value()).isEqualTo(1.0);
    }

    @Test
    @Order(2)
    void reports_carryTheEnginesOwnRoutes_withoutTheSharedExpert() {
        int[] ids = prompt(9, 1);
        Iterator<GenerateResponse> it = GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS)
                .generate(request(ids, 3, true));
        List<GenerateResponse> msgs = new ArrayList<>();
        it.forEachRemaining(msgs::add);
        int[] inputIds = msgs.getLast().getTrace().getInputIdsList().stream().mapToInt(Integer::intValue).toArray();
        List<Integer> generated = msgs.stream().flatMap(m -> m.getTokenIdsList().stream()).toList();
        assertThat(generated).hasSize(3);
        int n = inputIds.length;

        // The request's samples: its prompt tokens (prefill) and the two generated tokens fed back (decode).
        await().atMost(WAIT).until(() -> requestSamples(inputIds).size() == n + 2);
        List<RouteSample> samples = requestSamples(inputIds);
        StepOutput ref = model.localEngine().step(List.of(new SequenceStep(1, inputIds, 0, SequenceStep.Logits.LAST,
                true)), model.newCache(64)).getFirst();
        ModelConfig c = model.config();
        for (int p = 0; p < n; p++) {
            RouteSample s = samples.get(p);
            assertThat(s.getPrefill()).isTrue();
            assertThat(s.getRoute().getPosition()).isEqualTo(p);
            assertThat(s.getRoute().getTokenId()).isEqualTo(inputIds[p]);
            assertThat(s.getRoute().getLayersCount()).isEqualTo(c.numLayers());
            for (int l = 0; l < c.numLayers(); l++) {
                var lr = s.getRoute().getLayers(l);
                assertThat(lr.getLayer()).isEqualTo(l);
                assertThat(lr.getExpertsList()).as("layer %d position %d", l, p)
                        .containsExactlyElementsOf(IntStream.of(ref.routes()[l][p]).boxed().toList())
                        .allSatisfy(e -> assertThat(e).as("routed, not the shared expert").isLessThan(c.numExperts()));
                for (int j = 0; j < c.topK(); j++) {
                    assertThat(lr.getWeights(j)).isCloseTo(ref.routeWeights()[l][p][j], within(1e-5f));
                }
            }
        }
        assertThat(samples.subList(n, n + 2)).allSatisfy(s -> assertThat(s.getPrefill()).isFalse());
        assertThat(samples.get(n).getRoute().getTokenId()).isEqualTo(generated.get(0));
        assertThat(samples.get(n + 1).getRoute().getTokenId()).isEqualTo(generated.get(1));
        assertThat(samples.get(n + 1).getRoute().getPosition()).isEqualTo(n + 1);
        assertThat(samples).extracting(RouteSample::getRequestId).containsOnly(samples.getFirst().getRequestId());
        assertThat(router.reports).allSatisfy(r -> assertThat(r.message().getSource()).isEqualTo("gw-it"));
    }

    /**
     * The samples of the one request whose prompt tokens are {@code inputIds} (by its request id), by position. The
     * request id is the gateway's own; which one is found from the prompt.
     */
    private List<RouteSample> requestSamples(int[] inputIds) {
        Map<String, List<RouteSample>> byRequest = router.reports.stream().flatMap(r -> r.message().getSamplesList()
                .stream()).collect(Collectors.groupingBy(RouteSample::getRequestId));
        for (List<RouteSample> s : byRequest.values()) {
            List<RouteSample> sorted = s.stream().sorted(Comparator.comparingInt(x -> x.getRoute().getPosition())).toList();
            boolean match = sorted.size() >= inputIds.length && IntStream.range(0, inputIds.length)
                    .allMatch(p -> sorted.get(p).getRoute().getPosition() == p
                            && sorted.get(p).getRoute().getTokenId() == inputIds[p]);
            if (match) {
                return sorted;
            }
        }
        return List.of();
    }

    @Test
    @Order(3)
    void epochSwitchDuringAGeneration_isApplied_reported_andChangesNoToken() {
        int[] ids = prompt(12, 2);
        CompletableFuture<Void> firstToken = new CompletableFuture<>();
        List<Integer> tokens = new ArrayList<>();
        List<Integer> inputIds = new ArrayList<>();
        CompletableFuture<Void> done = new CompletableFuture<>();
        GatewayServiceGrpc.newStub(channel).generate(request(ids, 160, true), new io.grpc.stub.StreamObserver<>() {
            @Override
            public void onNext(GenerateResponse r) {
                synchronized (tokens) {
                    tokens.addAll(r.getTokenIdsList());
                }
                if (r.hasTrace()) {
                    inputIds.addAll(r.getTrace().getInputIdsList());
                }
                if (r.getTokenIdsCount() > 0) {
                    firstToken.complete(null);
                }
            }

            @Override
            public void onError(Throwable t) {
                firstToken.completeExceptionally(t);
                done.completeExceptionally(t);
            }

            @Override
            public void onCompleted() {
                done.complete(null);
            }
        });
        firstToken.orTimeout(60, TimeUnit.SECONDS).join();
        // Hold the generation inside a step (its expert calls wait), so the new epoch must arrive while it runs
        // and be applied at the boundary after that step, with ~158 steps still to go: no race with its end.
        java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
        experts.forEach(e -> e.hold.set(release));
        try {
            router.publish(placement(2, 2));
            await().atMost(WAIT).until(() -> placementSource.current().map(t -> t.epoch()).orElse(0L) == 2);
            assertThat(dispatch.epoch()).as("not applied inside a step").isEqualTo(1);
        } finally {
            experts.forEach(e -> e.hold.set(null));
            release.countDown();
        }
        await().atMost(WAIT).until(() -> dispatch.epoch() == 2);
        assertThat(done).as("the switch happened while the generation ran").isNotDone();

        done.orTimeout(120, TimeUnit.SECONDS).join();
        await().atMost(WAIT).until(() -> lastReportedEpoch() == 2);
        assertThat(dispatch.instances()).hasSize(2);
        assertThat(meters.get("moemesh_gateway_placement_epoch").gauge().value()).isEqualTo(2.0);
        assertThat(tokens).as("the reference engine's greedy tokens across the epoch switch")
                .isEqualTo(reference(inputIds.stream().mapToInt(Integer::intValue).toArray(), 160));

        // And a generation entirely under epoch 2.
        int[] again = prompt(7, 3);
        List<GenerateResponse> msgs = new ArrayList<>();
        GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS)
                .generate(request(again, 8, true)).forEachRemaining(msgs::add);
        assertThat(msgs.getLast().getTrace().getPlacementEpoch()).isEqualTo(2);
        assertThat(msgs.stream().flatMap(m -> m.getTokenIdsList().stream()).toList()).isEqualTo(reference(
                msgs.getLast().getTrace().getInputIdsList().stream().mapToInt(Integer::intValue).toArray(), 8));
    }

    /**
     * The router moved on to epoch 3, which does not fit this gateway's model (a layer is not placed): the instances
     * answer epoch 2 only until their drain grace after the router's COMMIT has passed, so the gateway goes not ready
     * (HTTP readiness and gRPC health, the empty and the serving service name) naming epoch 3, while epoch 2 still
     * serves what reaches it; a later epoch that fits makes it ready again.
     */
    @Test
    @Order(4)
    void publishedEpochThatCannotBeApplied_notReadyNamingIt_readyAgainOnceALaterOneIs() {
        assertThat(dispatch.epoch()).isEqualTo(2);
        assertThat(grpcHealth()).isEqualTo(ServingStatus.SERVING);
        router.publish(placement(3, 2).toBuilder().removeLayers(0).build());

        String why = "placement epoch 3 from the router at " + router.endpoint() + " does not fit the model: "
                + "placement epoch 3: layer 0 expert 0 is not placed; epoch 2 is answered only until the "
                + "expert-services drain it";
        await().atMost(WAIT).until(() -> grpcHealth() == ServingStatus.NOT_SERVING);
        assertThat(grpcHealth(GatewayServiceGrpc.SERVICE_NAME)).isEqualTo(ServingStatus.NOT_SERVING);
        HttpResponse<String> readiness = http(managementPort, "/actuator/health/readiness", null);
        assertThat(readiness.statusCode()).isEqualTo(503);
        assertThat(JSON.readTree(readiness.body()).at("/components/experts/details/reason").asString()).isEqualTo(why);
        List<GenerateResponse> msgs = new ArrayList<>();
        GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS)
                .generate(request(prompt(5, 4), 2, true)).forEachRemaining(msgs::add);
        assertThat(msgs.getLast().getTrace().getPlacementEpoch()).as("the last good epoch serves meanwhile")
                .isEqualTo(2);

        router.publish(placement(4, 1));
        await().atMost(WAIT).until(() -> dispatch.epoch() == 4 && grpcHealth() == ServingStatus.SERVING);
        assertThat(grpcHealth(GatewayServiceGrpc.SERVICE_NAME)).isEqualTo(ServingStatus.SERVING);
        assertThat(http(managementPort, "/actuator/health/readiness", null).statusCode()).isEqualTo(200);
    }
}
