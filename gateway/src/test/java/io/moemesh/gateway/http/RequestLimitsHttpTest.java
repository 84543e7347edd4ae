package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.gateway.serving.IntakeLimiter;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import java.io.ByteArrayInputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Bounded memory whatever the input, on a real socket with the default limits: bodies over max-request-bytes are
 * 413 with or without Content-Length, large bodies beyond the intake cap are 429 with Retry-After at once, prompts
 * that cannot fit and chats with too many messages are 400 before they are tokenized — and under a burst of
 * multi-megabyte requests the API keeps answering, correctly.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class RequestLimitsHttpTest {
    private static final String MODEL = TestModels.MIXTRAL_BF16;
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    private static final int MAX_BYTES = 4 << 20;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
    }

    @LocalServerPort
    int port;
    @Autowired
    IntakeLimiter intake;

    private HttpRequest.Builder post(String path) {
        return HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).timeout(Duration.ofSeconds(30))
                .header("Content-Type", "application/json");
    }

    /** With Content-Length. */
    private HttpResponse<String> send(String path, byte[] body) throws Exception {
        return HTTP.send(post(path).POST(HttpRequest.BodyPublishers.ofByteArray(body)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    /** Chunked: no Content-Length, the server learns the size only by reading. */
    private HttpResponse<String> sendChunked(String path, byte[] body) throws Exception {
        return HTTP.send(post(path).POST(HttpRequest.BodyPublishers.ofInputStream(() -> new ByteArrayInputStream(body)))
                .build(), HttpResponse.BodyHandlers.ofString());
    }

    private static byte[] promptBody(int promptBytes) {
        return ("{\"model\":\"" + MODEL + "\",\"max_tokens\":2,\"prompt\":\"" + "a".repeat(promptBytes) + "\"}")
                .getBytes(StandardCharsets.UTF_8);
    }

    private static byte[] chatBody(int messages) {
        StringBuilder sb = new StringBuilder("{\"model\":\"" + MODEL + "\",\"max_tokens\":2,\"messages\":[");
        for (int i = 0; i < messages; i++) {
            sb.append(i == 0 ? "" : ",").append("{\"role\":\"user\",\"content\":\"a\"}");
        }
        return sb.append("]}").toString().getBytes(StandardCharsets.UTF_8);
    }

    private static JsonNode error(HttpResponse<String> r) {
        return JSON.readTree(r.body()).get("error");
    }

    private void assertGoldenCompletion() throws Exception {
        GoldenCase g = GoldenCase.load(MODEL).get(1);
        HttpResponse<String> r = send("/v1/completions", JSON.writeValueAsBytes(Map.of("model", MODEL,
                "prompt", g.prompt(), "max_tokens", 16, "temperature", 0)));
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(JSON.readTree(r.body()).at("/choices/0/text").stringValue()).isEqualTo(g.greedyText());
    }

    @Test
    void burstOfMultiMegabyteRequests_allRefusedWith4xx_thenANormalRequestIsAnsweredCorrectly() throws Exception {
        byte[] prompt = promptBody(4_000_000);
        byte[] chat = chatBody(135_000);
        byte[] overLimit = promptBody(MAX_BYTES);
        assertThat(chat.length).isBetween(4_000_000, MAX_BYTES);
        ExecutorService threads = Executors.newFixedThreadPool(4);
        try {
            List<Future<HttpResponse<String>>> responses = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                int kind = t;
                responses.add(threads.submit(() -> {
                    HttpResponse<String> last = null;
                    for (int i = 0; i < 5; i++) {
                        last = switch ((kind + i) % 4) {
                            case 0 -> send("/v1/completions", prompt);
                            case 1 -> send("/v1/chat/completions", chat);
                            case 2 -> sendChunked("/v1/completions", prompt);
                            default -> send("/v1/completions", overLimit);
                        };
                        assertThat(last.statusCode()).as(last.body()).isIn(400, 413, 429);
                        assertThat(error(last).get("message").stringValue()).isNotBlank();
                        if (last.statusCode() == 429) {
                            assertThat(last.headers().firstValue("Retry-After")).isPresent();
                        }
                    }
                    return last;
                }));
            }
            for (Future<HttpResponse<String>> f : responses) {
                f.get(5, TimeUnit.MINUTES);
            }
        } finally {
            threads.shutdownNow();
        }
        assertThat(intake.largeInIntake()).as("every permit released").isZero();
        assertGoldenCompletion();
    }

    @Test
    void bodyOverTheLimit_is413_withOrWithoutContentLength() throws Exception {
        byte[] over = promptBody(MAX_BYTES + 1000);
        for (HttpResponse<String> r : List.of(send("/v1/completions", over), sendChunked("/v1/completions", over))) {
            assertThat(r.statusCode()).isEqualTo(413);
            assertThat(error(r).get("code").stringValue()).isEqualTo("request_too_large");
            assertThat(error(r).get("message").stringValue()).contains("exceeds the limit of " + MAX_BYTES + " bytes");
        }
        assertGoldenCompletion();
    }

    @Test
    void largeBodiesBeyondTheIntakeCap_get429WithRetryAfterAtOnce_smallOnesAreStillServed() throws Exception {
        byte[] large = promptBody(300_000);
        try (IntakeLimiter.Permit a = intake.admit(Long.MAX_VALUE); IntakeLimiter.Permit b = intake.admit(Long.MAX_VALUE)) {
            for (HttpResponse<String> r : List.of(send("/v1/completions", large), sendChunked("/v1/completions", large))) {
                assertThat(r.statusCode()).isEqualTo(429);
                assertThat(r.headers().firstValue("Retry-After")).hasValue("1");
                assertThat(error(r).get("code").stringValue()).isEqualTo("rate_limit_exceeded");
            }
            assertGoldenCompletion();
        }
        HttpResponse<String> r = sendChunked("/v1/completions", large);
        assertThat(r.statusCode()).as("a permit is free again").isEqualTo(400);
        assertThat(error(r).get("code").stringValue()).isEqualTo("context_length_exceeded");
    }

    @Test
    void promptOrChatThatCannotFit_is400ContextLengthExceeded_namingTheField() throws Exception {
        HttpResponse<String> prompt = send("/v1/completions", promptBody(100_000));
        assertThat(prompt.statusCode()).isEqualTo(400);
        assertThat(error(prompt).get("code").stringValue()).isEqualTo("context_length_exceeded");
        assertThat(error(prompt).get("param").stringValue()).isEqualTo("prompt");
        assertThat(error(prompt).get("message").stringValue()).contains("maximum context length is 512 tokens");

        HttpResponse<String> chat = send("/v1/chat/completions", ("{\"model\":\"" + MODEL + "\",\"messages\":["
                + "{\"role\":\"user\",\"content\":\"" + "b".repeat(50_000) + "\"}]}").getBytes(StandardCharsets.UTF_8));
        assertThat(chat.statusCode()).isEqualTo(400);
        assertThat(error(chat).get("code").stringValue()).isEqualTo("context_length_exceeded");
        assertThat(error(chat).get("param").stringValue()).isEqualTo("messages");

        StringBuilder ids = new StringBuilder("[");
        for (int i = 0; i < 600; i++) {
            ids.append(i == 0 ? "" : ",").append(5);
        }
        HttpResponse<String> tokens = send("/v1/completions", ("{\"model\":\"" + MODEL + "\",\"prompt\":" + ids + "]}")
                .getBytes(StandardCharsets.UTF_8));
        assertThat(tokens.statusCode()).isEqualTo(400);
        assertThat(error(tokens).get("code").stringValue()).isEqualTo("context_length_exceeded");
        assertThat(error(tokens).get("param").stringValue()).isEqualTo("prompt");
    }

    @Test
    void chatWithTooManyMessages_is400NamingMessages_withinTheLimitIsServed() throws Exception {
        HttpResponse<String> r = send("/v1/chat/completions", chatBody(2049));
        assertThat(r.statusCode()).isEqualTo(400);
        assertThat(error(r).get("param").stringValue()).isEqualTo("messages");
        assertThat(error(r).get("message").stringValue()).contains("more than 2048 messages");
        assertThat(send("/v1/chat/completions", chatBody(3)).statusCode()).isEqualTo(200);
    }

    @Test
    void intakeCounts_areBackToZero_afterRefusals() throws Exception {
        send("/v1/completions", promptBody(300_000));
        sendChunked("/v1/completions", promptBody(MAX_BYTES + 10));
        assertThat(intake.largeInIntake()).isZero();
        assertThat(Set.of(400, 413)).contains(sendChunked("/v1/completions", promptBody(300_000)).statusCode());
    }
}
