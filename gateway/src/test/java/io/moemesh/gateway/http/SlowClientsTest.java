package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.gateway.health.HttpSelfProbe;
import io.moemesh.model.golden.TestModels;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.boot.web.servlet.FilterRegistrationBean;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * Clients that send a request body slowly, a byte now and then, or stop after its first byte, on a listener with
 * two workers (server.tomcat.threads.max) and API keys on: they hold no worker, so the listener's self-probe and
 * other clients are answered meanwhile and liveness stays UP (before, two such clients held both workers in
 * blocking reads, the probe's GET queued and liveness failed: the kubelet restarted the pod, ending every stream
 * on it). A slow body is answered 408 and its connection closed at moemesh.gateway.admission.request-read-timeout
 * (5 s here), however it dribbles, long before Tomcat's 30 s per-read timeout (set here, so that only the
 * deadline can end it in time); a body refused before it arrived (401 without a key) is answered at once, its
 * connection closed soon after its client stops sending, without waiting for the body. The bodies being received
 * hold at most moemesh.gateway.admission.max-held-request-bytes together (64 KiB here), and give their bytes back
 * when their client goes away; a body that arrives in parts is answered, streamed too, once it is whole.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@DirtiesContext
class SlowClientsTest {
    private static final String MODEL = TestModels.MIXTRAL;
    private static final String KEY = "sk-slow-1";
    private static final int MAX_BYTES = 64 << 10;
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("moemesh.gateway.api-keys", () -> KEY + ":slow");
        r.add("moemesh.gateway.admission.request-read-timeout", () -> "5s");
        r.add("moemesh.gateway.admission.max-request-bytes", () -> String.valueOf(MAX_BYTES));
        r.add("moemesh.gateway.admission.max-held-request-bytes", () -> String.valueOf(MAX_BYTES));
        r.add("server.tomcat.threads.max", () -> "2");
        r.add("server.tomcat.threads.min-spare", () -> "1");
        r.add("server.tomcat.connection-timeout", () -> "30s");
        r.add("moemesh.gateway.health.http-probe-interval", () -> "100ms");
        r.add("moemesh.gateway.health.http-probe-timeout", () -> "500ms");
        r.add("moemesh.gateway.health.http-probe-failures", () -> "2");
    }

    @LocalServerPort
    int port;
    @LocalManagementPort
    int managementPort;
    @Autowired
    FilterRegistrationBean<PublicApiFilter> filter;
    @Autowired
    HttpSelfProbe probe;

    private int liveness() throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + managementPort
                + "/actuator/health/liveness")).timeout(Duration.ofSeconds(10)).build(),
                HttpResponse.BodyHandlers.discarding()).statusCode();
    }

    /** A POST that declares a 1000-byte body and sends its first byte, "{". */
    private Socket slowPost(String key) throws IOException {
        Socket s = new Socket("127.0.0.1", port);
        s.setSoTimeout(20_000);
        OutputStream out = s.getOutputStream();
        out.write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + (key == null ? "" : "Authorization: Bearer " + key + "\r\n")
                + "Content-Length: 1000\r\n\r\n{").getBytes(StandardCharsets.US_ASCII));
        out.flush();
        return s;
    }

    /** A POST of a {@code length}-byte completion body; sends its first {@code sent} bytes. */
    private Socket partialPost(String json, int length, int sent) throws IOException {
        Socket s = new Socket("127.0.0.1", port);
        s.setSoTimeout(20_000);
        byte[] body = (json + " ".repeat(length - json.length())).getBytes(StandardCharsets.US_ASCII);
        OutputStream out = s.getOutputStream();
        out.write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + "Authorization: Bearer " + KEY + "\r\nContent-Length: " + length + "\r\nConnection: close\r\n\r\n")
                .getBytes(StandardCharsets.US_ASCII));
        out.write(body, 0, sent);
        out.flush();
        return s;
    }

    private static String completion(boolean stream) {
        return "{\"model\":\"" + MODEL + "\",\"prompt\":\"hi\",\"max_tokens\":2,\"stream\":" + stream + "}";
    }

    /** Sends a space every 200 ms until the connection fails (closed by the gateway) or the socket is closed. */
    private static void dribble(Socket s, ScheduledExecutorService pace) {
        pace.scheduleAtFixedRate(() -> {
            try {
                s.getOutputStream().write(' ');
                s.getOutputStream().flush();
            } catch (IOException e) {
                // The gateway closed the connection, or the test is done: an exception ends the schedule.
                throw new UncheckedIOException(e);
            }
        }, 200, 200, TimeUnit.MILLISECONDS);
    }

    /** Everything the gateway sends on {@code s} until it closes the connection; fails on the socket's timeout. */
    private static String untilClosed(Socket s) throws IOException {
        InputStream in = s.getInputStream();
        ByteArrayOutputStream got = new ByteArrayOutputStream();
        byte[] buf = new byte[4096];
        try {
            for (int n; (n = in.read(buf)) >= 0; ) {
                got.write(buf, 0, n);
            }
        } catch (SocketTimeoutException e) {
            throw new AssertionError("the connection was not closed; got so far: " + got, e);
        }
        return got.toString(StandardCharsets.UTF_8);
    }

    @Test
    void slowBodies_holdNoWorker_livenessStaysUp_andEachIsAnswered408AtTheDeadline() throws Exception {
        long start = System.nanoTime();
        List<Socket> slow = List.of(slowPost(KEY), slowPost(KEY));
        ScheduledExecutorService pace = Executors.newScheduledThreadPool(2);
        try {
            long probeFailures = probe.failuresTotal();
            slow.forEach(s -> dribble(s, pace));
            // Both dribble for most of their 5 s; the probe runs every 100 ms and fails liveness after two misses.
            // Liveness alone cannot show held workers (two workers busy of two would excuse a timed-out probe): the
            // probe itself must keep being answered, so readiness's httpApi stays UP too. One probe may miss its
            // 500 ms on a loaded machine; held workers would fail every probe (7 or more in these 4 s, readiness DOWN
            // after two in a row), so at most one failure still tells them apart.
            await().during(Duration.ofSeconds(4)).atMost(Duration.ofSeconds(10)).until(() -> liveness() == 200
                    && probe.readiness().up() && probe.failuresTotal() - probeFailures <= 1);
            // Another client is served meanwhile: no worker waits for the slow bodies.
            HttpResponse<String> models = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                    + "/v1/models")).header("Authorization", "Bearer " + KEY).timeout(Duration.ofSeconds(10)).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(models.statusCode()).isEqualTo(200);

            for (Socket s : slow) {
                String answer = untilClosed(s);
                assertThat(answer).startsWith("HTTP/1.1 408").containsIgnoringCase("Connection: close")
                        .contains("\"code\":\"request_timeout\"", "moemesh.gateway.admission.request-read-timeout");
            }
            assertThat(Duration.ofNanos(System.nanoTime() - start)).as("answered at the 5 s deadline, long before "
                    + "the 30 s per-read timeout").isLessThan(Duration.ofSeconds(20));
            assertThat(liveness()).isEqualTo(200);
        } finally {
            pace.shutdownNow();
            for (Socket s : slow) {
                s.close();
            }
        }
    }

    @Test
    void bodiesBeingReceived_holdAtMostMaxHeldRequestBytes_theOneThatWouldPassItIs429() throws Exception {
        try (Socket first = partialPost(completion(false), 60_000, 40_000)) {
            // Held: 40 000 of the 65 536 bytes, its rest still to come.
            await().until(() -> filter.getFilter().heldBodyBytes() == 40_000);
            try (Socket second = partialPost(completion(false), 60_000, 40_000)) {
                String answer = untilClosed(second);
                assertThat(answer).startsWith("HTTP/1.1 429").contains("Retry-After: 1",
                        "moemesh.gateway.admission.max-held-request-bytes");
            }
            // The first is still received, and served once whole.
            first.getOutputStream().write(" ".repeat(20_000).getBytes(StandardCharsets.US_ASCII));
            first.getOutputStream().flush();
            assertThat(untilClosed(first)).startsWith("HTTP/1.1 200").contains("\"finish_reason\":\"length\"");
        }
        await().until(() -> filter.getFilter().heldBodyBytes() == 0);
    }

    @Test
    void bodyArrivingInParts_isServedOnceWhole_alsoAStream() throws Exception {
        String json = completion(true);
        try (Socket s = partialPost(json, 2_000, 1_000)) {
            // Its first half is held, waiting for the rest without a worker.
            await().until(() -> filter.getFilter().heldBodyBytes() == 1_000);
            s.getOutputStream().write(" ".repeat(1_000).getBytes(StandardCharsets.US_ASCII));
            s.getOutputStream().flush();
            String answer = untilClosed(s);
            assertThat(answer).startsWith("HTTP/1.1 200").contains("text/event-stream", "data: [DONE]");
        }
    }

    @Test
    void clientGoneMidBody_givesBackWhatItsBodyHeld() throws Exception {
        try (Socket s = partialPost(completion(false), 2_000, 1_000)) {
            await().until(() -> filter.getFilter().heldBodyBytes() == 1_000);
        }
        await().until(() -> filter.getFilter().heldBodyBytes() == 0);
    }

    @Test
    void unauthenticatedSlowBody_gets401AtOnce_andItsConnectionClosed_withoutWaitingForTheBody() throws Exception {
        try (Socket s = slowPost(null)) {
            // Nothing more is sent: the answer must not wait for the other 999 bytes, nor for the 5 s deadline.
            s.setSoTimeout(4_000);
            String answer = untilClosed(s);
            assertThat(answer).startsWith("HTTP/1.1 401").containsIgnoringCase("Connection: close")
                    .contains("WWW-Authenticate: Bearer", "\"code\":\"invalid_api_key\"");
        }
        assertThat(liveness()).isEqualTo(200);
    }
}
