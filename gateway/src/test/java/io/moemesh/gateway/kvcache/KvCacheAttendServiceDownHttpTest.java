package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.gateway.scheduling.EngineLoop;
import io.moemesh.gateway.support.Completions;
import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.PromptIds;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.util.Arrays;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Attend offload over a gateway pool of 128 positions (8 blocks of 16) and a black-holed kvcache-service (it stores
 * blocks but never answers a Pin): every offload times out. Once 3 did in a row the service looks down, and a
 * sequence that finds no room for its copies (offloads still in flight hold them all) does not wait for it: it runs
 * on with its blocks local. A prompt longer than the pool then fills the pool with no offload of its own to wait
 * for, and the scheduler would end it. Before 2828856 that end was the scheduler's "does not fit"
 * IllegalArgumentException, a 400 invalid_request_error for a prompt the advertised context admits; it is the 503
 * kvcache_unavailable a prompt gets whose own offload failed, and while the service looks down (and failed within the
 * offload timeout) such a prompt gets it at submit, before any prefill, on every API: each retry used to prefill a
 * whole pool for the same answer. Its Retry-After is what remains of that window (20 s here, the health's clock held
 * at the last failure so that a slow machine does not close the window during the test), not 1 s.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class KvCacheAttendServiceDownHttpTest {
    private static final String MODEL = TestModels.MIXTRAL;
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newHttpClient();
    private static final FakeKvCacheService KV = new FakeKvCacheService(16);
    /** Copies the offloads may hold at once: three offloads of 2 blocks. */
    private static final int COPY_BUDGET = 6;

    static {
        KV.silentPins = true;
    }

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        KvCacheGatewayProperties.add(r, MODEL, 128, KV::endpoint);
        // Chunks smaller than the pool, so a prompt longer than it is prefilled up to the pool's end.
        r.add("moemesh.gateway.step-token-budget", () -> "32");
        r.add("moemesh.gateway.kvcache.write-back-queue-blocks", () -> Integer.toString(COPY_BUDGET));
        r.add("moemesh.gateway.kvcache.attend.enabled", () -> "true");
        r.add("moemesh.gateway.kvcache.attend.threshold-tokens", () -> "48");
        r.add("moemesh.gateway.kvcache.attend.local-blocks", () -> "2");
        // How long the second round of offloads holds the room: its three requests must all end within it (the frozen
        // health clock does not hold the room's timeouts), on a loaded machine too.
        r.add("moemesh.gateway.kvcache.attend.offload-timeout", () -> "20s");
    }

    @LocalServerPort
    int port;

    @Autowired
    AttendOffload attend;
    @Autowired
    EngineLoop loop;
    @Autowired
    GrpcServerLifecycle grpc;

    @AfterAll
    static void stop() {
        KV.silentPins = false;
        KV.close();
    }

    private HttpResponse<String> complete(int[] prompt, int maxTokens) throws Exception {
        return complete(prompt, maxTokens, false);
    }

    private HttpResponse<String> complete(int[] prompt, int maxTokens, boolean stream) throws Exception {
        String body = JSON.writeValueAsString(Map.of("model", MODEL, "prompt", prompt, "max_tokens", maxTokens,
                "temperature", 0, "ignore_eos", true, "stream", stream));
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v1/completions"))
                        .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body))
                        .timeout(Duration.ofSeconds(60)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    /**
     * Three requests whose 65 final positions each start an offload of their 2 oldest blocks (2 copies) and which
     * end at once (1 token): the offloads outlive them, holding the copies until they time out.
     */
    private void offloadThree(long seed) throws Exception {
        for (int i = 0; i < 3; i++) {
            HttpResponse<String> r = complete(Completions.prompt(64, seed + i), 1);
            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        }
    }

    @Test
    void aPromptLongerThanThePool_whileTheServiceLooksDown_isRefusedWith503AtSubmit_withoutPrefill() throws Exception {
        offloadThree(301);
        await().atMost(Duration.ofSeconds(120)).until(() -> attend.offloadFailures() >= AttendOffload.DOWN_AFTER_FAILURES
                && attend.copyRoom() == COPY_BUDGET);
        // The refusal window stays open however long the requests below take (a loaded machine).
        long frozen = attend.health().lastFailureNanos();
        attend.health().clock(() -> frozen);
        try {
            refusedAtSubmit();
        } finally {
            attend.health().clock(System::nanoTime);
        }
    }

    private void refusedAtSubmit() throws Exception {

        // The service looks down; three more offloads, in flight for 20 s, hold every copy's room (and fail then).
        offloadThree(311);
        assertThat(attend.copyRoom()).isZero();
        long steps = loop.steps();

        HttpResponse<String> r = complete(Completions.prompt(150, 321), 10);

        assertThat(r.statusCode()).as(r.body()).isEqualTo(503);
        JsonNode error = JSON.readTree(r.body()).at("/error");
        assertThat(error.at("/type").stringValue()).isEqualTo("service_unavailable");
        assertThat(error.at("/code").stringValue()).isEqualTo("kvcache_unavailable");
        assertThat(error.at("/message").stringValue()).contains("151 tokens", "128 positions", "kvcache-service")
                .doesNotContain("Exception");
        assertThat(r.headers().firstValue("Retry-After")).contains("20");

        // The same answer for a stream, before any chunk: a JSON error, not an event stream.
        HttpResponse<String> streamed = complete(Completions.prompt(150, 322), 10, true);
        assertThat(streamed.statusCode()).as(streamed.body()).isEqualTo(503);
        assertThat(streamed.body()).doesNotContain("data:");
        assertThat(JSON.readTree(streamed.body()).at("/error/code").stringValue()).isEqualTo("kvcache_unavailable");
        assertThat(streamed.headers().firstValue("Retry-After")).contains("20");

        // And gRPC: UNAVAILABLE, the wait in its description, the request id in the trailer.
        int[] ids = Completions.prompt(150, 323);
        ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", grpc.port()).usePlaintext().build();
        try {
            GenerateRequest request = GenerateRequest.newBuilder()
                    .setPromptIds(PromptIds.newBuilder().addAllTokenIds(Arrays.stream(ids).boxed().toList()))
                    .setSampling(SamplingParams.newBuilder().setMaxTokens(10)).build();
            StatusRuntimeException e = null;
            try {
                GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS).generate(request)
                        .forEachRemaining(x -> { });
            } catch (StatusRuntimeException thrown) {
                e = thrown;
            }
            assertThat(e).as("the call ends with a status").isNotNull();
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
            assertThat(e.getStatus().getDescription()).contains("128 positions", "kvcache-service", "retry after 20 s");
            assertThat(e.getTrailers().get(Metadata.Key.of("x-request-id", Metadata.ASCII_STRING_MARSHALLER)))
                    .isNotBlank();
        } finally {
            channel.shutdownNow();
        }

        // Refused at submit: none of them ran a forward pass (each used to prefill the whole pool first).
        assertThat(loop.steps()).isEqualTo(steps);
    }
}
