package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.micrometer.core.instrument.MeterRegistry;
import io.moemesh.model.golden.TestModels;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.context.TestConfiguration;
import org.springframework.boot.test.system.CapturedOutput;
import org.springframework.boot.test.system.OutputCaptureExtension;
import org.springframework.boot.tomcat.TomcatConnectorCustomizer;
import org.springframework.context.annotation.Bean;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * A client that stops reading its SSE stream stalls only itself (SseSink): the engine thread never writes to a
 * socket, so other requests keep being served, and once the stream's unsent events pass
 * {@code max-stream-backlog-bytes} its sequence is cancelled, counted as client_stalled (not as a client that went
 * away) and logged with its request id.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@ExtendWith(OutputCaptureExtension.class)
class StalledStreamTest {
    private static final String MODEL = TestModels.MIXTRAL;
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("moemesh.gateway.admission.max-stream-backlog-bytes", () -> "16384");
    }

    /** Small socket send buffers (no autotuning on loopback to MBs): a client that does not read fills them soon. */
    @TestConfiguration
    static class SmallSendBuffers {
        @Bean
        TomcatConnectorCustomizer smallSendBuffer() {
            return c -> c.setProperty("socket.txBufSize", "4096");
        }
    }

    @LocalServerPort
    int port;
    @Autowired
    MeterRegistry meters;

    private double requests(String status) {
        var c = meters.find("moemesh.gateway.requests").tag("status", status).counter();
        return c == null ? 0 : c.count();
    }

    @Test
    void clientThatStopsReading_doesNotHoldUpOtherRequests_andIsCancelledPastTheBacklogBound_countedAsStalled(
            CapturedOutput output) throws Exception {
        double cancelledBefore = requests("cancelled");
        double stalledBefore = requests("client_stalled");
        // Big events (five alternatives per token) for the whole context (a chat without max_tokens runs to its
        // end; an explicit value past it would be refused), to a receive window of a few KB.
        byte[] body = ("{\"model\":\"" + MODEL + "\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                + "\"ignore_eos\":true,\"logprobs\":true,\"top_logprobs\":5,\"stream\":true}")
                .getBytes(StandardCharsets.UTF_8);
        try (Socket stalled = new Socket()) {
            stalled.setReceiveBufferSize(1024);
            stalled.connect(new InetSocketAddress("127.0.0.1", port));
            OutputStream out = stalled.getOutputStream();
            out.write(("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    + "Content-Length: " + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(body);
            out.flush();
            // Never read. A request running alongside it, long enough to still be generating when the stream's
            // socket is full, must end as if the stream were not there.
            CompletableFuture<HttpResponse<String>> other = HTTP.sendAsync(HttpRequest.newBuilder(
                            URI.create("http://127.0.0.1:" + port + "/v1/completions"))
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(
                            "{\"model\":\"" + MODEL + "\",\"prompt\":\"x\",\"max_tokens\":200,\"ignore_eos\":true}"))
                    .build(), HttpResponse.BodyHandlers.ofString());
            await().atMost(Duration.ofSeconds(20)).until(other::isDone);
            assertThat(other.join().statusCode()).isEqualTo(200);
            await().atMost(Duration.ofSeconds(20)).until(() -> requests("client_stalled") > stalledBefore);
            assertThat(output.getOut()).containsPattern("request \\S+ ended: the client did not read its event stream");
        }
        assertThat(requests("cancelled")).as("not counted as a client that went away").isEqualTo(cancelledBefore);
    }
}
