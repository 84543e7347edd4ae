package io.moemesh.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.sun.net.httpserver.HttpServer;
import io.moemesh.cli.mesh.RunningMesh;
import io.moemesh.model.golden.TestModels;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import org.junit.jupiter.api.Test;

/**
 * OpenTelemetry traces cross the process boundary: with an OTLP endpoint configured, the gateway's
 * {@code moemesh.expert.call} spans and the expert services' {@code moemesh.expert.batch} spans reach the
 * collector in the same traces, the expert span a child of the gateway's. The collector is a loopback HTTP
 * server speaking OTLP/HTTP (protobuf), the transport the services use by default.
 */
class TracingAcrossServicesTest {

    /** (traceId, spanId, parentSpanId, name) of every span received. */
    record Received(String trace, String span, String parent, String name, String service) {
    }

    @Test
    void expertBatchSpans_areChildrenOfTheGatewaysExpertCallSpans() throws Exception {
        ConcurrentLinkedQueue<Received> spans = new ConcurrentLinkedQueue<>();
        HttpServer collector = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        collector.createContext("/v1/traces", ex -> {
            try (InputStream in = ex.getRequestBody()) {
                OtlpTraces.decode(in.readAllBytes(), spans::add);
            }
            ex.sendResponseHeaders(200, -1);
            ex.close();
        });
        collector.start();
        String endpoint = "http://127.0.0.1:" + collector.getAddress().getPort() + "/v1/traces";
        try (RunningMesh mesh = TestMeshes.start("tracing", TestModels.MIXTRAL, 2, 1, List.of(
                "-Dmanagement.opentelemetry.tracing.export.otlp.endpoint=" + endpoint,
                "-Dmanagement.tracing.sampling.probability=1.0",
                "-Dmanagement.opentelemetry.tracing.export.schedule-delay=200ms"))) {
            String base = mesh.gatewayHttp();
            HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(base
                    + "/v1/completions")).header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers
                    .ofString("{\"model\":\"" + TestModels.MIXTRAL + "\",\"prompt\":\"trace me\",\"max_tokens\":3}"))
                    .build(), HttpResponse.BodyHandlers.ofString());
            assertThat(r.statusCode()).isEqualTo(200);
            await().atMost(Duration.ofSeconds(60)).untilAsserted(() -> {
                List<Received> calls = spans.stream().filter(s -> s.name().equals("moemesh.expert.call")).toList();
                List<Received> batches = spans.stream().filter(s -> s.name().equals("moemesh.expert.batch")).toList();
                assertThat(calls).isNotEmpty();
                assertThat(batches).isNotEmpty();
                assertThat(batches).anySatisfy(b -> assertThat(calls).anyMatch(c ->
                        c.trace().equals(b.trace()) && c.span().equals(b.parent())));
                assertThat(batches).allMatch(b -> b.service().equals("moemesh-expert-service"));
                assertThat(spans).anyMatch(s -> s.name().equals("moemesh.engine.step"));
            });
        } finally {
            collector.stop(0);
        }
    }
}
