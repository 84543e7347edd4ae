package io.moemesh.gateway.health;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.model.golden.TestModels;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Clients that hold every connection the public listener accepts (server.tomcat.max-connections, 2 here) with
 * idle sockets leave the self-probe's connection waiting in the backlog, unanswered: readiness fails (new clients
 * would wait too), liveness does not (the listener is full, not dead, and a restart would end every stream on it),
 * and readiness is back once the clients leave.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@DirtiesContext
class ListenerFullHealthTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newHttpClient();

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(TestModels.MIXTRAL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("server.tomcat.max-connections", () -> "2");
        r.add("moemesh.gateway.health.http-probe-interval", () -> "100ms");
        r.add("moemesh.gateway.health.http-probe-timeout", () -> "500ms");
        r.add("moemesh.gateway.health.http-probe-failures", () -> "2");
    }

    @LocalServerPort
    int port;
    @LocalManagementPort
    int managementPort;

    private JsonNode health(String group) throws Exception {
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + managementPort
                + "/actuator/health/" + group)).timeout(Duration.ofSeconds(10)).build(),
                HttpResponse.BodyHandlers.ofString());
        return JSON.readTree(r.body());
    }

    @Test
    void idleClientsHoldingEveryConnection_failReadiness_notLiveness() throws Exception {
        await().until(() -> health("readiness").at("/status").asString().equals("UP"));
        List<Socket> idle = List.of(new Socket("127.0.0.1", port), new Socket("127.0.0.1", port));
        try {
            await().atMost(Duration.ofSeconds(30)).until(() ->
                    health("readiness").at("/components/httpApi/status").asString().equals("DOWN"));
            // Many probes fail meanwhile (every 100 ms, two are enough): none of them counts for liveness.
            await().during(Duration.ofSeconds(2)).atMost(Duration.ofSeconds(10))
                    .until(() -> health("liveness").at("/status").asString().equals("UP"));
            JsonNode live = health("liveness").at("/components/httpApiLiveness");
            assertThat(live.at("/status").asString()).isEqualTo("UP");
            assertThat(live.at("/details/reason").asString()).contains("its clients keep it full");
            assertThat(live.at("/details/saturated").asString()).contains("connections 2/2");
            assertThat(live.at("/details/consecutiveFailures").asInt()).isGreaterThanOrEqualTo(2);
        } finally {
            for (Socket s : idle) {
                s.close();
            }
        }
        await().atMost(Duration.ofSeconds(30)).until(() ->
                health("readiness").at("/status").asString().equals("UP"));
    }
}
