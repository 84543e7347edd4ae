package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.gateway.support.Completions;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.FinishReason;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.proto.gateway.v1.PromptIds;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * moemesh.gateway.admission.max-new-tokens is a cap, like the context: a request that sets no max_tokens (HTTP: the
 * field absent; gRPC: 0, "no explicit limit" in gateway.proto) is served up to it and ends with finish reason length;
 * only an explicit max_tokens above it is the caller's mistake. ignore_eos makes every completion reach the cap.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class MaxNewTokensCapTest {
    private static final String MODEL = TestModels.MIXTRAL;
    private static final int CAP = 8;
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("moemesh.gateway.admission.max-new-tokens", () -> String.valueOf(CAP));
    }

    @LocalServerPort
    int port;
    @Autowired
    GrpcServerLifecycle grpc;
    ManagedChannel channel;

    @BeforeAll
    void connect() {
        channel = NettyChannelBuilder.forAddress("127.0.0.1", grpc.port()).usePlaintext().build();
    }

    @AfterAll
    void disconnect() {
        channel.shutdownNow();
    }

    private HttpResponse<String> post(String path, String body) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    private static String chat(String fields) {
        return "{\"model\":\"" + MODEL + "\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi there\"}],"
                + "\"temperature\":0,\"ignore_eos\":true" + fields + "}";
    }

    private List<GenerateResponse> generate(int maxTokens) {
        List<GenerateResponse> out = new ArrayList<>();
        GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS)
                .generate(GenerateRequest.newBuilder().setPrompt("gRPC").setSampling(SamplingParams.newBuilder()
                        .setMaxTokens(maxTokens).setIgnoreEos(true)).build())
                .forEachRemaining(out::add);
        return out;
    }

    @Test
    void chat_withoutMaxTokens_isCappedAtTheConfiguredLimit_notRefused() throws Exception {
        HttpResponse<String> r = post("/v1/chat/completions", chat(""));
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        JsonNode body = JSON.readTree(r.body());
        assertThat(body.at("/choices/0/finish_reason").stringValue()).isEqualTo("length");
        assertThat(body.at("/usage/completion_tokens").intValue()).isEqualTo(CAP);
    }

    @Test
    void streamedChat_withoutMaxTokens_endsAtTheCap_withFinishReasonLength() throws Exception {
        HttpResponse<String> r = post("/v1/chat/completions",
                chat(",\"stream\":true,\"stream_options\":{\"include_usage\":true}"));
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        List<String> events = OpenAiHttpTest.events(r.body());
        assertThat(events.getLast()).isEqualTo("[DONE]");
        assertThat(JSON.readTree(events.get(events.size() - 3)).at("/choices/0/finish_reason").stringValue())
                .isEqualTo("length");
        assertThat(JSON.readTree(events.get(events.size() - 2)).at("/usage/completion_tokens").intValue()).isEqualTo(CAP);
    }

    @Test
    void completion_withoutMaxTokens_isCappedAtTheConfiguredLimit_belowOpenAisDefaultOf16() throws Exception {
        HttpResponse<String> r = post("/v1/completions", "{\"model\":\"" + MODEL
                + "\",\"prompt\":\"gRPC\",\"temperature\":0,\"ignore_eos\":true}");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        JsonNode body = JSON.readTree(r.body());
        assertThat(body.at("/choices/0/finish_reason").stringValue()).isEqualTo("length");
        assertThat(body.at("/usage/completion_tokens").intValue()).isEqualTo(CAP);
    }

    @Test
    void generate_withMaxTokensZero_isCappedAtTheConfiguredLimit_withFinishReasonLength() {
        List<GenerateResponse> msgs = generate(0);
        GenerateResponse last = msgs.getLast();
        assertThat(last.getFinishReason()).isEqualTo(FinishReason.FINISH_REASON_LENGTH);
        assertThat(last.getUsage().getCompletionTokens()).isEqualTo(CAP);
        assertThat(msgs.stream().mapToInt(GenerateResponse::getTokenIdsCount).sum()).isEqualTo(CAP);
    }

    @Test
    void explicitMaxTokensAtTheCap_isServed_aboveIt_is400AndInvalidArgument() throws Exception {
        assertThat(post("/v1/chat/completions", chat(",\"max_tokens\":" + CAP)).statusCode()).isEqualTo(200);
        assertThat(generate(CAP).getLast().getUsage().getCompletionTokens()).isEqualTo(CAP);

        for (var c : List.of(
                Map.entry("max_tokens", post("/v1/chat/completions", chat(",\"max_tokens\":" + (CAP + 1)))),
                Map.entry("max_completion_tokens", post("/v1/chat/completions",
                        chat(",\"max_completion_tokens\":" + (CAP + 1)))),
                Map.entry("max_completion_tokens", post("/v1/completions", "{\"model\":\"" + MODEL
                        + "\",\"prompt\":\"gRPC\",\"max_completion_tokens\":" + (CAP + 1) + "}")),
                Map.entry("max_tokens", post("/v1/completions", "{\"model\":\"" + MODEL
                        + "\",\"prompt\":\"gRPC\",\"max_tokens\":16}")))) {
            HttpResponse<String> r = c.getValue();
            assertThat(r.statusCode()).as(r.body()).isEqualTo(400);
            JsonNode error = JSON.readTree(r.body()).get("error");
            assertThat(error.get("message").stringValue()).contains(c.getKey()).contains("exceeds the limit of " + CAP);
            assertThat(error.get("param").stringValue()).as("names the field that was set").isEqualTo(c.getKey());
        }
        assertThatThrownBy(() -> generate(CAP + 1)).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(e.getStatus().getDescription()).contains("max_tokens " + (CAP + 1) + " exceeds the limit of " + CAP);
        });
    }

    /**
     * The cap is checked on the max_tokens asked for, not on that value clamped to the room a long prompt leaves:
     * otherwise any max_tokens would pass once the prompt is within the cap of the context's end.
     */
    @Test
    void explicitMaxTokensAboveTheCap_isRefused_evenWhenThePromptLeavesLessRoomThanTheCap() throws Exception {
        int context = JSON.readTree(HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                + "/v1/models")).build(), HttpResponse.BodyHandlers.ofString()).body()).at("/data/0/max_model_len")
                .intValue();
        // With BOS, room for CAP - 5 tokens only (gRPC, as gateway.proto says, ends at the context).
        int[] ids = Completions.prompt(context - CAP + 4, 7);
        assertThat(ids.length + 1).isGreaterThan(context - CAP);
        String prompt = JSON.writeValueAsString(ids);

        HttpResponse<String> refused = post("/v1/completions", "{\"model\":\"" + MODEL + "\",\"prompt\":" + prompt
                + ",\"max_tokens\":" + (CAP + 1) + "}");
        assertThat(refused.statusCode()).as(refused.body()).isEqualTo(400);
        assertThat(JSON.readTree(refused.body()).at("/error/param").stringValue()).isEqualTo("max_tokens");
        assertThat(JSON.readTree(refused.body()).at("/error/message").stringValue())
                .contains("max_tokens " + (CAP + 1) + " exceeds the limit of " + CAP);
        GenerateRequest.Builder grpcRequest = GenerateRequest.newBuilder().setPromptIds(PromptIds.newBuilder()
                .addAllTokenIds(java.util.Arrays.stream(ids).boxed().toList()));
        assertThatThrownBy(() -> GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS)
                .generate(grpcRequest.setSampling(SamplingParams.newBuilder().setMaxTokens(CAP + 1)).build())
                .forEachRemaining(m -> { })).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                    assertThat(e.getStatus().getDescription()).contains("sampling.max_tokens " + (CAP + 1)
                            + " exceeds the limit of " + CAP);
                });

        // Within the cap but beyond the context's room, HTTP refuses it as OpenAI does (context_length_exceeded);
        // without max_tokens the same prompt is served to the end of the context.
        HttpResponse<String> tooLong = post("/v1/completions", "{\"model\":\"" + MODEL + "\",\"prompt\":" + prompt
                + ",\"max_tokens\":" + CAP + ",\"temperature\":0,\"ignore_eos\":true}");
        assertThat(tooLong.statusCode()).as(tooLong.body()).isEqualTo(400);
        assertThat(JSON.readTree(tooLong.body()).at("/error/code").stringValue()).isEqualTo("context_length_exceeded");
        HttpResponse<String> served = post("/v1/completions", "{\"model\":\"" + MODEL + "\",\"prompt\":" + prompt
                + ",\"temperature\":0,\"ignore_eos\":true}");
        assertThat(served.statusCode()).as(served.body()).isEqualTo(200);
        assertThat(JSON.readTree(served.body()).at("/usage/completion_tokens").intValue()).isEqualTo(CAP - 5);
        List<GenerateResponse> grpcServed = new ArrayList<>();
        GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS)
                .generate(grpcRequest.setSampling(SamplingParams.newBuilder().setMaxTokens(CAP).setIgnoreEos(true))
                        .build())
                .forEachRemaining(grpcServed::add);
        assertThat(grpcServed.getLast().getFinishReason()).isEqualTo(FinishReason.FINISH_REASON_LENGTH);
        assertThat(grpcServed.getLast().getUsage().getCompletionTokens()).isEqualTo(CAP - 5);
    }
}
