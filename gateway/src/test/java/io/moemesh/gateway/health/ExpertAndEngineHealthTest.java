package io.moemesh.gateway.health;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.moemesh.gateway.support.ScratchPlacement;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementFiles;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The gateway's readiness and liveness on its management port, and its gRPC health, against two expert-service
 * stand-ins on real ports (every expert on exactly one of them): an instance that goes away makes the gateway
 * not ready, naming an expert it held, until it is back; a step that makes no progress makes it not ready, then
 * not live, until the step completes.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@DirtiesContext
class ExpertAndEngineHealthTest {
    private static final String MODEL = TestModels.MIXTRAL;
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newHttpClient();
    private static FakeExpert expert0;
    private static FakeExpert expert1;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) throws IOException {
        expert0 = new FakeExpert();
        expert1 = new FakeExpert();
        ModelConfig c = ModelConfigReader.read(TestModels.dir(MODEL));
        List<Instance> instances = List.of(
                Instance.newBuilder().setId("expert-0").setEndpoint("127.0.0.1:" + expert0.port()).build(),
                Instance.newBuilder().setId("expert-1").setEndpoint("127.0.0.1:" + expert1.port()).build());
        Path placement = ScratchPlacement.file("moemesh-health-test");
        PlacementFiles.write(placement, EvenPlacement.build(1, instances, c.numLayers(), c.numExperts(),
                c.hasSharedExpert(), 1));
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("moemesh.gateway.placement-file", placement::toString);
        // the fake instances are plaintext: the explicit opt-out of mutual TLS
        r.add("moemesh.gateway.tls.mode", () -> "plaintext");
        r.add("moemesh.gateway.dispatch.step-deadline", () -> "120s");
        r.add("moemesh.gateway.health.engine-stall", () -> "1s");
        r.add("moemesh.gateway.health.engine-wedged", () -> "2s");
        r.add("moemesh.gateway.health.http-probe-interval", () -> "200ms");
        r.add("moemesh.gateway.health.grpc-health-interval", () -> "100ms");
    }

    @AfterAll
    static void stopExperts() {
        expert0.close();
        expert1.close();
    }

    @LocalServerPort
    int port;

    @LocalManagementPort
    int managementPort;

    @Autowired
    GrpcServerLifecycle grpc;
    @Autowired
    private PrometheusConfig prometheusConfig;

    private ManagedChannel channel;

    @BeforeEach
    void readyToBeginWith() {
        channel = NettyChannelBuilder.forAddress("127.0.0.1", grpc.port()).usePlaintext().build();
        await().atMost(Duration.ofSeconds(30)).until(() -> probe("readiness").status() == 200);
    }

    @AfterEach
    void closeChannel() {
        channel.shutdownNow();
    }

    private record Probe(int status, JsonNode body) {
        String component(String name) {
            return body.at("/components/" + name + "/status").asString();
        }

        String reason(String name) {
            return body.at("/components/" + name + "/details/reason").asString();
        }
    }

    private Probe probe(String group) {
        HttpResponse<String> r = get(managementPort, "/actuator/health/" + group);
        return new Probe(r.statusCode(), JSON.readTree(r.body()));
    }

    private static HttpResponse<String> get(int port, String path) {
        try {
            return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).build(),
                    HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    private ServingStatus grpcHealth(String service) {
        return HealthGrpc.newBlockingStub(channel).withDeadlineAfter(5, TimeUnit.SECONDS)
                .check(HealthCheckRequest.newBuilder().setService(service).build()).getStatus();
    }

    @Test
    void instanceGone_readinessDownNamingAnExpertItHeld_grpcNotServing_livenessUp_thenBackWhenItReturns() {
        assertThat(probe("readiness").component("experts")).isEqualTo("UP");
        assertThat(grpcHealth("")).isEqualTo(ServingStatus.SERVING);

        expert1.stop();
        await().until(() -> probe("readiness").status() == 503);
        Probe ready = probe("readiness");
        assertThat(ready.component("experts")).isEqualTo("DOWN");
        assertThat(ready.reason("experts"))
                .matches("layer \\d+ expert \\d+ \\(placed on expert-1\\) has no usable replica \\(and \\d+ more experts\\)");
        assertThat(ready.body().at("/components/experts/details/instances/expert-1/health").asString())
                .isEqualTo("UNREACHABLE");
        assertThat(probe("liveness").status()).as("a missing expert is no reason to restart the gateway").isEqualTo(200);
        await().until(() -> grpcHealth("") == ServingStatus.NOT_SERVING);
        assertThat(grpcHealth(GatewayServiceGrpc.SERVICE_NAME)).isEqualTo(ServingStatus.NOT_SERVING);

        expert1.restart();
        await().atMost(Duration.ofSeconds(10)).until(() -> probe("readiness").status() == 200);
        await().until(() -> grpcHealth("") == ServingStatus.SERVING);
        assertThat(grpcHealth(GatewayServiceGrpc.SERVICE_NAME)).isEqualTo(ServingStatus.SERVING);
    }

    @Test
    void stepWithoutProgress_readinessThenLivenessDown_upAgainOnceTheStepCompletes() throws Exception {
        expert0.hold();
        expert1.hold();
        CompletableFuture<HttpResponse<String>> completion = HTTP.sendAsync(HttpRequest.newBuilder(
                        URI.create("http://127.0.0.1:" + port + "/v1/completions"))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"" + MODEL
                        + "\",\"prompt\":\"stuck\",\"max_tokens\":2,\"temperature\":0}")).build(),
                HttpResponse.BodyHandlers.ofString());
        try {
            await().until(() -> probe("readiness").status() == 503);
            assertThat(probe("readiness").component("engine")).isEqualTo("DOWN");
            assertThat(probe("readiness").reason("engine")).startsWith("the engine has had work for");
            await().until(() -> grpcHealth("") == ServingStatus.NOT_SERVING);
            await().until(() -> probe("liveness").status() == 503);
            assertThat(probe("liveness").component("engineLiveness")).isEqualTo("DOWN");
        } finally {
            expert0.release();
            expert1.release();
        }
        assertThat(completion.get(60, TimeUnit.SECONDS).statusCode()).isEqualTo(200);
        await().until(() -> probe("liveness").status() == 200 && probe("readiness").status() == 200);
        await().until(() -> grpcHealth("") == ServingStatus.SERVING);
    }

    @Test
    void actuator_onlyOnTheManagementPort_withTheInstanceMetrics() {
        assertThat(get(port, "/actuator/health").statusCode()).isEqualTo(404);
        assertThat(get(port, "/actuator/prometheus").statusCode()).isEqualTo(404);
        assertThat(get(port, "/v1/models").statusCode()).isEqualTo(200);
        await().until(() -> get(managementPort, "/actuator/prometheus").body().contains("moemesh_gateway_ready 1.0"));
        assertThat(get(managementPort, "/actuator/prometheus").body())
                .contains("moemesh_gateway_instance_breaker_state{instance=\"expert-0\",state=\"closed\"} 1.0")
                .contains("moemesh_gateway_instance_breaker_state{instance=\"expert-0\",state=\"open\"} 0.0")
                .contains("moemesh_gateway_instance_health{instance=\"expert-1\",status=\"serving\"} 1.0")
                .contains("moemesh_gateway_instance_health{instance=\"expert-1\",status=\"unreachable\"} 0.0")
                .contains("moemesh_gateway_instance_available{instance=\"expert-0\"} 1.0")
                .contains("moemesh_gateway_engine_stalled_seconds ")
                .contains("moemesh_gateway_http_probe_failures_total ");
    }

    /** application.yaml's exemplar rate reaches the Prometheus client: one candidate per series every 2 s. */
    @Test
    void prometheusExemplars_oneCandidatePerSeriesEveryTwoSeconds() {
        assertThat(prometheusConfig.prometheusProperties())
                .containsEntry("io.prometheus.exemplars.sampleIntervalMilliseconds", "2000");
    }
}
