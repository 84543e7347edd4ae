package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.MetadataUtils;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.ModelInfoRequest;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/** API keys → tenants (401 / UNAUTHENTICATED without a valid key) and per-tenant rate limits (429 + Retry-After). */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class AdmissionAndAuthTest {
    private static final HttpClient HTTP = HttpClient.newHttpClient();
    private static final String MODEL = TestModels.MIXTRAL;
    /** Room for a body of several MB: more than the socket buffers and Tomcat's own swallowing of a rest hold. */
    private static final int MAX_BYTES = 8 << 20;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("moemesh.gateway.api-keys", () -> "sk-alice-123:alice,sk-bob-456:bob");
        r.add("moemesh.gateway.admission.tenant-requests-per-second", () -> "0.001");
        r.add("moemesh.gateway.admission.tenant-burst", () -> "2");
        r.add("moemesh.gateway.admission.max-request-bytes", () -> String.valueOf(MAX_BYTES));
    }

    @LocalServerPort
    int port;

    @Autowired
    GrpcServerLifecycle grpc;

    HttpResponse<String> complete(String key, String prompt) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v1/completions"))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(
                        "{\"model\":\"" + MODEL + "\",\"prompt\":\"" + prompt + "\",\"max_tokens\":2}"));
        if (key != null) {
            b.header("Authorization", "Bearer " + key);
        }
        return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void missingOrWrongKey_is401_inOpenAiErrorJson() throws Exception {
        HttpResponse<String> none = complete(null, "x");
        assertThat(none.statusCode()).isEqualTo(401);
        assertThat(none.body()).contains("\"invalid_api_key\"").contains("missing API key");
        HttpResponse<String> wrong = complete("sk-mallory", "x");
        assertThat(wrong.statusCode()).isEqualTo(401);
        assertThat(wrong.body()).contains("incorrect API key").doesNotContain("sk-mallory");
    }

    @Test
    void tenantOverItsRate_gets429WithRetryAfter_otherTenantUnaffected() throws Exception {
        assertThat(complete("sk-alice-123", "one").statusCode()).isEqualTo(200);
        assertThat(complete("sk-alice-123", "two").statusCode()).isEqualTo(200);
        HttpResponse<String> third = complete("sk-alice-123", "three");
        assertThat(third.statusCode()).isEqualTo(429);
        assertThat(third.headers().firstValue("Retry-After")).isPresent();
        assertThat(third.body()).contains("rate_limit_exceeded").contains("alice");
        assertThat(complete("sk-bob-456", "one").statusCode()).isEqualTo(200);
    }

    @Test
    void oversizedBody_is413() throws Exception {
        HttpResponse<String> r = complete("sk-bob-456", "x".repeat(MAX_BYTES));
        assertThat(r.statusCode()).isEqualTo(413);
        assertThat(r.body()).contains("exceeds the limit of " + MAX_BYTES + " bytes");
    }

    /**
     * The body of a request refused for its key is read and dropped before the 401 goes out, as for 413 and 429: a
     * client still sending several MB reads the answer rather than a connection reset under it.
     */
    @Test
    void wrongKey_withABodyOfSeveralMegabytes_stillReadsThe401Json() throws Exception {
        byte[] body = ("{\"model\":\"" + MODEL + "\",\"prompt\":\"" + "x".repeat(MAX_BYTES - 1_000_000) + "\"}")
                .getBytes(StandardCharsets.UTF_8);
        for (String key : java.util.Arrays.asList("sk-mallory", null)) {
            String answer = sendWholeBodyThenRead(key, body);
            assertThat(answer).as("key " + key).startsWith("HTTP/1.1 401");
            assertThat(answer.substring(answer.indexOf("\r\n\r\n") + 4)).contains("\"invalid_api_key\"");
            assertThat(complete(key, "x").statusCode()).isEqualTo(401);
        }
    }

    /** A client that sends its whole body before it reads the answer, as Python's http.client does. */
    private String sendWholeBodyThenRead(String key, byte[] body) throws Exception {
        try (Socket s = new Socket("127.0.0.1", port)) {
            s.setSoTimeout(30_000);
            OutputStream out = s.getOutputStream();
            out.write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    + (key == null ? "" : "Authorization: Bearer " + key + "\r\n") + "Content-Length: " + body.length
                    + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(body);
            out.flush();
            return new String(s.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    @Test
    void grpcWithoutKey_isUnauthenticated_withKey_works() {
        ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", grpc.port()).usePlaintext().build();
        try {
            var stub = GatewayServiceGrpc.newBlockingStub(ch);
            assertThatThrownBy(() -> stub.modelInfo(ModelInfoRequest.getDefaultInstance()))
                    .isInstanceOfSatisfying(StatusRuntimeException.class,
                            e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAUTHENTICATED));
            Metadata md = new Metadata();
            md.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer sk-bob-456");
            assertThat(stub.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(md))
                    .modelInfo(ModelInfoRequest.getDefaultInstance()).getNumLayers()).isEqualTo(4);
        } finally {
            ch.shutdownNow();
        }
    }
}
