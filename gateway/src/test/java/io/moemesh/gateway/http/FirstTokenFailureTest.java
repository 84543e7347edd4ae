package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.gateway.support.FakeExpertInstance;
import io.moemesh.model.MoeModel;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.FinishReason;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The gateway's experts on a real gRPC instance that can be made to fail: a failure before the first token keeps
 * its real status (HTTP 503 with Retry-After, also when streaming; gRPC UNAVAILABLE), a failure after tokens were
 * streamed ends the stream in-band (an SSE error event then [DONE]; a final gRPC message with FINISH_REASON_ERROR,
 * the status and the trace's input_ids), the text held back until then included — and the gateway serves golden tokens again once the
 * instance is back.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class FirstTokenFailureTest {
    private static final String MODEL = TestModels.MIXTRAL;
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    private static FakeExpertInstance instance;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("moemesh.gateway.placement-file", () -> instance().placementFile().toString());
        // the fake instance is plaintext: the explicit opt-out of mutual TLS
        r.add("moemesh.gateway.tls.mode", () -> "plaintext");
        r.add("moemesh.gateway.dispatch.step-deadline", () -> "5s");
        r.add("moemesh.gateway.dispatch.open-state-wait", () -> "200ms");
    }

    private static synchronized FakeExpertInstance instance() {
        if (instance == null) {
            instance = new FakeExpertInstance(TestModels.dir(MODEL));
        }
        return instance;
    }

    /** The prompt of the held-back-text tests ({@link #greedyIds}: its tokens through the instance while it is up). */
    private static final String HELD_PROMPT = "Experts in a mixture";

    @LocalServerPort
    int port;
    @Autowired
    GrpcServerLifecycle grpc;
    @Autowired
    MoeModel model;
    ManagedChannel channel;
    int[] greedyIds;

    @BeforeAll
    void connect() {
        channel = NettyChannelBuilder.forAddress("127.0.0.1", grpc.port()).usePlaintext().build();
        List<Integer> ids = new ArrayList<>();
        GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS)
                .generate(GenerateRequest.newBuilder().setPrompt(HELD_PROMPT).setSampling(SamplingParams.newBuilder()
                        .setMaxTokens(400).setIgnoreEos(true)).build())
                .forEachRemaining(m -> ids.addAll(m.getTokenIdsList()));
        greedyIds = ids.stream().mapToInt(Integer::intValue).toArray();
    }

    /** The text of the first {@code n} greedy tokens: what a non-streamed completion of that many tokens is. */
    private String greedyText(int n) {
        return model.tokenizer().decode(Arrays.copyOf(greedyIds, n), true);
    }

    /**
     * A stop string that starts at the greedy text's second character and runs as far as a stop string may: every
     * token after the first leaves its text held back as a possible start of it, until the failure.
     */
    private String stopHoldingAllButTheFirstCharacter() {
        String text = greedyText(greedyIds.length);
        String stop = text.substring(1, Math.min(text.length(), 1 + 256));
        return Character.isHighSurrogate(stop.charAt(stop.length() - 1)) ? stop.substring(0, stop.length() - 1) : stop;
    }

    @AfterAll
    void stopInstance() {
        channel.shutdownNow();
        instance.close();
    }

    @AfterEach
    void instanceBack() {
        instance.down.set(false);
        instance.batchDelay = Duration.ZERO;
    }

    private HttpRequest request(String path, String body) {
        return HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).timeout(Duration.ofSeconds(30))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build();
    }

    private HttpResponse<String> complete(boolean stream, int maxTokens) throws Exception {
        return HTTP.send(request("/v1/completions", "{\"model\":\"" + MODEL + "\",\"prompt\":\"Experts in a mixture\","
                + "\"max_tokens\":" + maxTokens + ",\"temperature\":0,\"stream\":" + stream + "}"),
                HttpResponse.BodyHandlers.ofString());
    }

    /** Last: its failures open the instance's circuit breaker (every call fails), which the other tests avoid. */
    @Test
    @Order(6)
    void failureBeforeTheFirstToken_keepsItsStatus_503WithRetryAfter_streamedOrNot_andUnavailableOnGrpc()
            throws Exception {
        instance.down.set(true);
        for (boolean stream : new boolean[] {true, false}) {
            HttpResponse<String> r = complete(stream, 8);
            assertThat(r.statusCode()).as("stream " + stream).isEqualTo(503);
            assertThat(r.headers().firstValue("Retry-After")).hasValue("1");
            assertThat(r.headers().firstValue("Content-Type")).hasValueSatisfying(t -> assertThat(t)
                    .startsWith("application/json"));
            assertThat(JSON.readTree(r.body()).at("/error/code").stringValue()).isEqualTo("no_healthy_experts");
        }
        assertThatThrownBy(() -> GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS)
                .generate(GenerateRequest.newBuilder().setPrompt("Experts").build()).forEachRemaining(m -> { }))
                .isInstanceOfSatisfying(StatusRuntimeException.class,
                        e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE));
    }

    @Test
    @Order(2)
    void failureAfterTokensWereStreamed_isAnSseErrorEvent_thenDone() throws Exception {
        HttpResponse<Stream<String>> r = HTTP.send(request("/v1/chat/completions", "{\"model\":\"" + MODEL
                + "\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":400,\"ignore_eos\":true,"
                + "\"temperature\":0,\"stream\":true}"), HttpResponse.BodyHandlers.ofLines());
        assertThat(r.statusCode()).isEqualTo(200);
        List<String> events = new ArrayList<>();
        Iterator<String> lines = r.body().iterator();
        while (lines.hasNext()) {
            String line = lines.next();
            if (!line.startsWith("data:")) {
                continue;
            }
            events.add(line.substring(5).strip());
            if (events.size() == 2) {
                // The role chunk and the first content chunk are out: now the instance fails.
                instance.down.set(true);
            }
        }
        assertThat(JSON.readTree(events.get(0)).at("/choices/0/delta/role").stringValue()).isEqualTo("assistant");
        assertThat(JSON.readTree(events.get(1)).at("/choices/0/delta/content").isString()).isTrue();
        assertThat(events.getLast()).isEqualTo("[DONE]");
        JsonNode error = JSON.readTree(events.get(events.size() - 2));
        assertThat(error.at("/error/code").stringValue()).isEqualTo("no_healthy_experts");
        assertThat(events.size()).isLessThan(400);
    }

    @Test
    @Order(3)
    void grpc_failureAfterTokens_endsWithAFinalMessage_finishReasonError_carryingTheStatus_andTheInputIds() {
        Iterator<GenerateResponse> it = GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS)
                .generate(GenerateRequest.newBuilder().setPrompt("Experts in a mixture")
                        .setSampling(SamplingParams.newBuilder().setMaxTokens(400).setIgnoreEos(true)).build());
        List<GenerateResponse> messages = new ArrayList<>();
        while (it.hasNext()) {
            GenerateResponse m = it.next();
            messages.add(m);
            if (m.getTokenIdsCount() > 0) {
                instance.down.set(true);
            }
        }
        GenerateResponse last = messages.getLast();
        assertThat(last.getFinishReason()).isEqualTo(FinishReason.FINISH_REASON_ERROR);
        assertThat(last.getError().getCode()).isEqualTo(Status.Code.UNAVAILABLE.value());
        assertThat(last.getError().getMessage()).isNotBlank();
        int streamed = messages.stream().mapToInt(GenerateResponse::getTokenIdsCount).sum();
        assertThat(streamed).isPositive().isLessThan(400);
        assertThat(last.getUsage().getCompletionTokens()).isEqualTo(streamed);
        // gateway.proto: the last message carries trace.input_ids always, a failed call's too.
        assertThat(last.getTrace().getInputIdsCount()).isEqualTo(messages.getFirst().getPromptTokens())
                .isEqualTo(last.getUsage().getPromptTokens()).isPositive();
    }

    @Test
    @Order(4)
    void stream_endingInAnError_stillSendsTheTextHeldBackForAPartialStopMatch_beforeTheErrorEvent() throws Exception {
        String stop = stopHoldingAllButTheFirstCharacter();
        // 5 ms a batch (20 ms a token): the engine cannot reach the stop string's end before this client has seen
        // two tokens and taken the instance down, however busy the machine
        instance.batchDelay = Duration.ofMillis(5);
        HttpResponse<Stream<String>> r = HTTP.send(request("/v1/completions", JSON.writeValueAsString(java.util.Map.of(
                "model", MODEL, "prompt", HELD_PROMPT, "max_tokens", 400, "ignore_eos", true, "temperature", 0,
                "logprobs", 1, "stop", List.of(stop), "stream", true))), HttpResponse.BodyHandlers.ofLines());
        assertThat(r.statusCode()).isEqualTo(200);
        List<JsonNode> chunks = new ArrayList<>();
        String error = null;
        String last = null;
        int seen = 0;
        Iterator<String> lines = r.body().iterator();
        while (lines.hasNext()) {
            String line = lines.next();
            if (!line.startsWith("data: ")) {
                continue;
            }
            last = line.substring(6);
            if (last.equals("[DONE]")) {
                continue;
            }
            JsonNode event = JSON.readTree(last);
            if (event.has("error")) {
                error = event.at("/error/code").stringValue();
                continue;
            }
            assertThat(error).as("no chunk after the error event").isNull();
            chunks.add(event);
            seen += event.at("/choices/0/logprobs/tokens").size();
            if (seen >= 2) {
                // Every token is a chunk (logprobs): two are out, the second's text held back; now the instance fails.
                instance.down.set(true);
            }
        }
        assertThat(last).isEqualTo("[DONE]");
        assertThat(error).isEqualTo("no_healthy_experts");
        StringBuilder text = new StringBuilder();
        int tokens = 0;
        for (JsonNode c : chunks) {
            text.append(c.at("/choices/0/text").stringValue());
            tokens += c.at("/choices/0/logprobs/tokens").size();
        }
        assertThat(tokens).as("the failure came before the stop string could match").isGreaterThanOrEqualTo(2)
                .isLessThan(greedyIds.length);
        // The text held back since the second character is the last chunk (no token of its own), before the error.
        String held = chunks.getLast().at("/choices/0/text").stringValue();
        assertThat(held).startsWith(stop.substring(0, 1));
        assertThat(chunks.getLast().at("/choices/0/logprobs/tokens").size()).isZero();
        assertThat(text.toString()).isEqualTo(greedyText(tokens));
    }

    @Test
    @Order(5)
    void grpc_endingInAnError_carriesTheTextHeldBackForAPartialStopMatch_onTheFinalMessage() {
        String stop = stopHoldingAllButTheFirstCharacter();
        instance.batchDelay = Duration.ofMillis(5); // as in the SSE test: the client keeps up

        Iterator<GenerateResponse> it = GatewayServiceGrpc.newBlockingStub(channel)
                .withDeadlineAfter(60, TimeUnit.SECONDS).generate(GenerateRequest.newBuilder().setPrompt(HELD_PROMPT)
                        .setSampling(SamplingParams.newBuilder().setMaxTokens(400).setIgnoreEos(true).addStop(stop))
                        .build());
        List<GenerateResponse> messages = new ArrayList<>();
        int seen = 0;
        while (it.hasNext()) {
            GenerateResponse m = it.next();
            messages.add(m);
            seen += m.getTokenIdsCount();
            if (seen >= 2) {
                instance.down.set(true);
            }
        }
        GenerateResponse last = messages.getLast();
        assertThat(last.getFinishReason()).isEqualTo(FinishReason.FINISH_REASON_ERROR);
        int tokens = messages.stream().mapToInt(GenerateResponse::getTokenIdsCount).sum();
        assertThat(tokens).as("the failure came before the stop string could match").isGreaterThanOrEqualTo(2)
                .isLessThan(greedyIds.length);
        assertThat(last.getTokenIdsCount()).isZero();
        assertThat(last.getText()).startsWith(stop.substring(0, 1));
        assertThat(messages.stream().map(GenerateResponse::getText).collect(Collectors.joining()))
                .isEqualTo(greedyText(tokens));
    }

    @Test
    @Order(1)
    void throughTheInstance_greedyCompletion_isGolden() throws Exception {
        GoldenCase g = GoldenCase.load(MODEL).get(0);
        HttpResponse<String> r = HTTP.send(request("/v1/completions", JSON.writeValueAsString(java.util.Map.of(
                "model", MODEL, "prompt", g.prompt(), "max_tokens", 16, "temperature", 0))),
                HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(JSON.readTree(r.body()).at("/choices/0/text").stringValue()).isEqualTo(g.greedyText());
    }
}
