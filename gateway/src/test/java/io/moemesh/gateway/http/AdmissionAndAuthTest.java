package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.MetadataUtils;
import io.moemesh.gateway.serving.IntakeLimiter;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.ModelInfoRequest;
import io.moemesh.proto.gateway.v1.TokenizeRequest;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.List;
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
        r.add("moemesh.gateway.api-keys", () -> "sk-alice-123:alice,sk-bob-456:bob,sk-carol-789:carol,sk-dave-012:dave,"
                + "sk-erin-345:erin,sk-frank-678:frank,sk-gina-901:gina");
        r.add("moemesh.gateway.admission.tenant-requests-per-second", () -> "0.001");
        r.add("moemesh.gateway.admission.tenant-burst", () -> "2");
        r.add("moemesh.gateway.admission.max-request-bytes", () -> String.valueOf(MAX_BYTES));
    }

    @LocalServerPort
    int port;

    @Autowired
    GrpcServerLifecycle grpc;
    @Autowired
    IntakeLimiter intake;
    @Autowired
    io.micrometer.core.instrument.MeterRegistry registry;

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
    void missingOrWrongKey_is401_inOpenAiErrorJson_withABearerChallenge() throws Exception {
        HttpResponse<String> none = complete(null, "x");
        assertThat(none.statusCode()).isEqualTo(401);
        assertThat(none.body()).contains("\"invalid_api_key\"").contains("missing API key");
        // RFC 9110 §15.5.2: a 401 carries the challenge of the scheme it wants.
        assertThat(none.headers().firstValue("WWW-Authenticate")).hasValue("Bearer");
        HttpResponse<String> wrong = complete("sk-mallory", "x");
        assertThat(wrong.statusCode()).isEqualTo(401);
        assertThat(wrong.body()).contains("incorrect API key").doesNotContain("sk-mallory");
        assertThat(wrong.headers().firstValue("WWW-Authenticate")).hasValue("Bearer");
    }

    @Test
    void tenantOverItsRate_gets429WithRetryAfter_otherTenantUnaffected() throws Exception {
        assertThat(complete("sk-alice-123", "one").statusCode()).isEqualTo(200);
        assertThat(complete("sk-alice-123", "two").statusCode()).isEqualTo(200);
        HttpResponse<String> third = complete("sk-alice-123", "three");
        assertThat(third.statusCode()).isEqualTo(429);
        assertThat(third.headers().firstValue("Retry-After")).isPresent();
        assertThat(third.body()).contains("rate_limit_exceeded").contains("alice");
        assertThat(registry.get("moemesh.gateway.requests").tags("status", "OverloadedException", "tenant", "alice")
                .counter().count()).as("the rate refusal is counted in requests_total").isEqualTo(1);
        assertThat(complete("sk-bob-456", "one").statusCode()).isEqualTo(200);
    }

    /**
     * A small body is charged when it starts, not once whole: a tenant past its rate is answered 429 before the body
     * arrives, so bodies that never complete cannot hold connections and received bytes uncharged.
     */
    @Test
    void tenantPastItsRate_smallSlowBody_is429BeforeItsBodyArrives() throws Exception {
        assertThat(complete("sk-erin-345", "one").statusCode()).isEqualTo(200);
        assertThat(complete("sk-erin-345", "two").statusCode()).isEqualTo(200);
        try (Socket s = new Socket("127.0.0.1", port)) {
            // Well before the 30 s body deadline, which is what answered it before.
            s.setSoTimeout(10_000);
            OutputStream out = s.getOutputStream();
            out.write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    + "Authorization: Bearer sk-erin-345\r\nContent-Length: 1000\r\n\r\n{")
                    .getBytes(StandardCharsets.US_ASCII));
            out.flush();
            byte[] head = new byte[12];
            int n = 0;
            for (int r; n < head.length && (r = s.getInputStream().read(head, n, head.length - n)) > 0; ) {
                n += r;
            }
            assertThat(new String(head, 0, n, StandardCharsets.US_ASCII)).isEqualTo("HTTP/1.1 429");
        }
    }

    private static GatewayServiceGrpc.GatewayServiceBlockingStub stub(ManagedChannel ch, String key) {
        Metadata md = new Metadata();
        md.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + key);
        return GatewayServiceGrpc.newBlockingStub(ch).withInterceptors(MetadataUtils.newAttachHeadersInterceptor(md));
    }

    /**
     * A tenant past its rate is refused before its large body takes an intake permit or is parsed and tokenized:
     * with every large-body permit held, its large requests (HTTP, gRPC Generate and Tokenize) are refused for its
     * rate, not for the permits; another tenant's large request then takes the permit freed for it and is read.
     */
    @Test
    void tenantPastItsRate_largeRequestRefusedBeforeItTakesAPermit_anotherTenantsStillPasses() throws Exception {
        assertThat(complete("sk-carol-789", "one").statusCode()).isEqualTo(200);
        assertThat(complete("sk-carol-789", "two").statusCode()).isEqualTo(200);
        String large = "a".repeat(300_000);
        ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", grpc.port()).usePlaintext()
                .maxInboundMessageSize(1 << 20).build();
        IntakeLimiter.Permit first = intake.admit(Long.MAX_VALUE);
        try (IntakeLimiter.Permit second = intake.admit(Long.MAX_VALUE)) {
            HttpResponse<String> r = complete("sk-carol-789", large);
            assertThat(r.statusCode()).as(r.body()).isEqualTo(429);
            assertThat(r.headers().firstValue("Retry-After")).isPresent();
            assertThat(r.body()).contains("tenant carol exceeds its rate limit").doesNotContain("being read already");
            for (Runnable call : List.<Runnable>of(
                    () -> stub(ch, "sk-carol-789").tokenize(TokenizeRequest.newBuilder().setText(large).build()),
                    () -> stub(ch, "sk-carol-789").generate(GenerateRequest.newBuilder().setPrompt(large).build())
                            .hasNext())) {
                assertThatThrownBy(call::run).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
                    assertThat(e.getStatus().getDescription()).contains("tenant carol exceeds its rate limit");
                });
            }
            assertThat(intake.largeInIntake()).isEqualTo(2);
            first.close();
            HttpResponse<String> other = complete("sk-dave-012", large);
            assertThat(other.statusCode()).as("read and refused for its length, not for a permit").isEqualTo(400);
            assertThat(other.body()).contains("context_length_exceeded");
        } finally {
            first.close();
            ch.shutdownNow();
        }
        assertThat(intake.largeInIntake()).isZero();
    }

    /** Its own tenant: a 413 is charged, so on bob it would spend the burst tenantOverItsRate's bob request needs. */
    @Test
    void oversizedBody_is413() throws Exception {
        HttpResponse<String> r = complete("sk-gina-901", "x".repeat(MAX_BYTES));
        assertThat(r.statusCode()).isEqualTo(413);
        assertThat(r.body()).contains("exceeds the limit of " + MAX_BYTES + " bytes");
    }

    /**
     * A generation request is charged once authenticated, before its body is looked at: one whose declared length is
     * over the limit and a chunked one counted past it are both 413 and both charged (before, only the chunked one
     * was), so the tenant's third request is past its burst of 2.
     */
    @Test
    void tenantCharged_forA413_declaredOrChunked_alike() throws Exception {
        HttpResponse<String> declared = complete("sk-frank-678", "x".repeat(MAX_BYTES));
        assertThat(declared.statusCode()).isEqualTo(413);
        byte[] over = ("{\"model\":\"" + MODEL + "\",\"prompt\":\"" + "x".repeat(MAX_BYTES) + "\"}")
                .getBytes(StandardCharsets.UTF_8);
        // A body of unknown length: sent chunked, so it is counted as it arrives.
        HttpResponse<String> chunked = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                        + "/v1/completions")).header("Content-Type", "application/json")
                .header("Authorization", "Bearer sk-frank-678")
                .POST(HttpRequest.BodyPublishers.ofInputStream(() -> new java.io.ByteArrayInputStream(over))).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(chunked.statusCode()).isEqualTo(413);

        HttpResponse<String> third = complete("sk-frank-678", "x");
        assertThat(third.statusCode()).as(third.body()).isEqualTo(429);
        assertThat(third.body()).contains("tenant frank exceeds its rate limit");
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
