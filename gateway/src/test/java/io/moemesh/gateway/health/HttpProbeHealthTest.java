package io.moemesh.gateway.health;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.model.golden.TestModels;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * A public HTTP listener that does not answer (here: the self-probe pointed at a closed port, as a dead Tomcat
 * poller looks from outside) while its load does not explain it (no client keeps it full) fails readiness and
 * liveness after the configured failures in a row, and turns the gateway's gRPC health NOT_SERVING.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@DirtiesContext
class HttpProbeHealthTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newHttpClient();

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) throws IOException {
        int closed;
        try (ServerSocket s = new ServerSocket()) {
            s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
            closed = s.getLocalPort();
        }
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(TestModels.MIXTRAL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("moemesh.gateway.health.http-probe-port", () -> Integer.toString(closed));
        r.add("moemesh.gateway.health.http-probe-interval", () -> "100ms");
        r.add("moemesh.gateway.health.http-probe-timeout", () -> "500ms");
        r.add("moemesh.gateway.health.http-probe-failures", () -> "2");
        r.add("moemesh.gateway.health.grpc-health-interval", () -> "100ms");
    }

    @LocalManagementPort
    int managementPort;

    @Autowired
    GrpcServerLifecycle grpc;

    private JsonNode health(String group, int expectedStatus) throws Exception {
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(
                URI.create("http://127.0.0.1:" + managementPort + "/actuator/health/" + group)).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).as(group + ": " + r.body()).isEqualTo(expectedStatus);
        return JSON.readTree(r.body());
    }

    @Test
    void listenerNotAnswering_readinessAndLivenessDown_grpcNotServing() throws Exception {
        await().untilAsserted(() -> health("liveness", 503));
        JsonNode live = health("liveness", 503);
        assertThat(live.at("/components/httpApiLiveness/status").asString()).isEqualTo("DOWN");
        assertThat(live.at("/components/httpApiLiveness/details/reason").asString())
                .startsWith("the public HTTP listener did not answer");
        assertThat(live.at("/components/engineLiveness/status").asString()).isEqualTo("UP");
        JsonNode ready = health("readiness", 503);
        assertThat(ready.at("/components/httpApi/status").asString()).isEqualTo("DOWN");
        assertThat(ready.at("/components/experts/status").asString()).isEqualTo("UP");

        ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", grpc.port()).usePlaintext().build();
        try {
            await().until(() -> HealthGrpc.newBlockingStub(ch).withDeadlineAfter(5, TimeUnit.SECONDS)
                    .check(HealthCheckRequest.getDefaultInstance()).getStatus() == ServingStatus.NOT_SERVING);
        } finally {
            ch.shutdownNow();
        }
    }
}
