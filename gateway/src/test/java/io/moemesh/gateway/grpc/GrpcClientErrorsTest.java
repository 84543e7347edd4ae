package io.moemesh.gateway.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnknownFieldSet;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCalls;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.MeterRegistry;
import io.moemesh.gateway.serving.IntakeLimiter;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.ChatInput;
import io.moemesh.proto.gateway.v1.ChatMessage;
import io.moemesh.proto.gateway.v1.FinishReason;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.ModelInfoRequest;
import io.moemesh.proto.gateway.v1.PromptIds;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.proto.gateway.v1.TokenizeRequest;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.grpc.HeldRequestBytes;
import io.moemesh.service.testing.RawMessages;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Named;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * What gateway.proto promises for bad input, on a real socket: uint32 fields read unsigned, floats NaN/∞/out of
 * range, stop strings (at most 16, non-empty), request_id ≤ 128 bytes, prompt ids in [0, vocab_size) and no more
 * than the prompt limit are INVALID_ARGUMENT naming the field; another model is NOT_FOUND; chat without a template FAILED_PRECONDITION;
 * large messages beyond the intake cap RESOURCE_EXHAUSTED; unparseable bytes INVALID_ARGUMENT; a call whose request
 * would take the bytes held before half-closes past admission.max-held-request-bytes RESOURCE_EXHAUSTED; a call
 * without its request message or with a second one INVALID_ARGUMENT (a client's mistake, never INTERNAL).
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class GrpcClientErrorsTest {

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(TestModels.QWEN2_MOE).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        // 8 largest messages (4 MiB each): the ninth passes it (the default, 32 x that, would need 65 such calls)
        r.add("moemesh.gateway.admission.max-held-request-bytes", () -> "33554432");
    }

    @Autowired
    GrpcServerLifecycle server;
    @Autowired
    IntakeLimiter intake;
    @Autowired
    HeldRequestBytes held;
    @Autowired
    MeterRegistry meters;
    ManagedChannel channel;
    GatewayServiceGrpc.GatewayServiceBlockingStub stub;

    @BeforeAll
    void connect() {
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        stub = GatewayServiceGrpc.newBlockingStub(channel);
    }

    @AfterAll
    void disconnect() {
        channel.shutdownNow();
    }

    private List<GenerateResponse> generate(GenerateRequest r) {
        List<GenerateResponse> out = new ArrayList<>();
        stub.withDeadlineAfter(60, TimeUnit.SECONDS).generate(r).forEachRemaining(out::add);
        return out;
    }

    private Status generateStatus(GenerateRequest r) {
        try {
            generate(r);
            return Status.OK;
        } catch (StatusRuntimeException e) {
            return e.getStatus();
        }
    }

    private static GenerateRequest.Builder prompt(SamplingParams.Builder s) {
        return GenerateRequest.newBuilder().setPrompt("gRPC").setSampling(s.getMaxTokens() == 0 ? s.setMaxTokens(1) : s);
    }

    private static SamplingParams.Builder sampling() {
        return SamplingParams.newBuilder();
    }

    static Stream<Arguments> invalid() {
        ChatInput.Builder many = ChatInput.newBuilder();
        for (int i = 0; i < 2049; i++) {
            many.addMessages(ChatMessage.newBuilder().setRole("user").setContent("a"));
        }
        return Stream.of(
                Arguments.of(prompt(sampling().setMaxTokens(-1)), "sampling.max_tokens must be at most 2147483647, got 4294967295"),
                Arguments.of(prompt(sampling().setLogprobs(Integer.MIN_VALUE)), "sampling.logprobs must be in [0, 5], got 2147483648"),
                Arguments.of(prompt(sampling().setLogprobs(6)), "sampling.logprobs must be in [0, 5], got 6"),
                Arguments.of(prompt(sampling().setTopK(-1)), "sampling.top_k must be in [0, 2147483647] (0 = disabled), got 4294967295"),
                Arguments.of(prompt(sampling().setTemperature(Float.NaN)), "sampling.temperature must be a finite number"),
                Arguments.of(prompt(sampling().setTemperature(Float.POSITIVE_INFINITY)), "sampling.temperature"),
                Arguments.of(prompt(sampling().setTemperature(-1)), "sampling.temperature"),
                Arguments.of(prompt(sampling().setTopP(Float.NaN)), "sampling.top_p must be in [0, 1]"),
                Arguments.of(prompt(sampling().setTopP(1.5f)), "sampling.top_p"),
                Arguments.of(prompt(sampling().addAllStop(Collections.nCopies(17, "x"))), "sampling.stop takes at most 16"),
                Arguments.of(prompt(sampling().addStop("")), "sampling.stop strings must not be empty"),
                Arguments.of(prompt(sampling().addStop("s".repeat(257))), "sampling.stop strings may have at most 256"),
                Arguments.of(prompt(sampling()).setRequestId("r".repeat(129)), "request_id has 129 bytes"),
                Arguments.of(prompt(sampling()).setRequestId("é".repeat(65)), "request_id has 130 bytes"),
                Arguments.of(prompt(sampling()).setRequestId("a\nforged log line"), "request_id must not contain control"),
                Arguments.of(GenerateRequest.newBuilder().setPromptIds(PromptIds.newBuilder().addTokenIds(5).addTokenIds(-1)),
                        "prompt_ids.token_ids[1] = -1 is outside [0, "),
                Arguments.of(GenerateRequest.newBuilder().setPromptIds(PromptIds.newBuilder().addTokenIds(1 << 20)),
                        "prompt_ids.token_ids[0] = 1048576 is outside [0, "),
                Arguments.of(GenerateRequest.newBuilder().setPromptIds(PromptIds.newBuilder()), "prompt_ids.token_ids is empty"),
                Arguments.of(GenerateRequest.newBuilder().setPromptIds(PromptIds.newBuilder()
                        .addAllTokenIds(Collections.nCopies(100_000, 5))), "the prompt (prompt_ids.token_ids) has 100000 tokens"),
                Arguments.of(GenerateRequest.newBuilder().setPrompt("x".repeat(100_000)), "prompt has 100000 bytes of text"),
                Arguments.of(GenerateRequest.newBuilder().setChat(many), "chat.messages has more than 2048 messages"),
                Arguments.of(GenerateRequest.newBuilder(), "the request has no input"));
    }

    @ParameterizedTest(name = "{1}")
    @MethodSource("invalid")
    void badGenerate_isInvalidArgument_namingTheField(GenerateRequest.Builder request, String message) {
        Status s = generateStatus(request.build());
        assertThat(s.getCode()).as(s.getDescription()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(s.getDescription()).contains(message);
    }

    @Test
    void limitsThemselves_areAccepted_sixteenStopStrings_maxTokensAtIntMax_topKAtIntMax() {
        List<GenerateResponse> r = generate(prompt(sampling().addAllStop(Collections.nCopies(16, "zzz"))
                .setTopK(Integer.MAX_VALUE).setLogprobs(5)).setRequestId("r".repeat(128)).build());
        assertThat(r.getLast().getFinishReason()).isEqualTo(FinishReason.FINISH_REASON_LENGTH);
        assertThat(r.getFirst().getRequestId()).hasSize(128);
        assertThat(generate(GenerateRequest.newBuilder().setPrompt("gRPC").setSampling(sampling()
                .setMaxTokens(Integer.MAX_VALUE).setTemperature(0)).build()).getLast().getFinishReason())
                .isIn(FinishReason.FINISH_REASON_STOP, FinishReason.FINISH_REASON_LENGTH);
    }

    @Test
    void otherModel_isNotFound_chatWithoutTemplate_isFailedPrecondition_forGenerateAndTokenize() {
        assertThat(generateStatus(prompt(sampling()).setModel("gpt-4").build()).getCode()).isEqualTo(Status.Code.NOT_FOUND);
        Status longName = generateStatus(prompt(sampling()).setModel("m".repeat(100_000)).build());
        assertThat(longName.getCode()).as("a 100 KB name is echoed cut short, within the client's header limit")
                .isEqualTo(Status.Code.NOT_FOUND);
        assertThat(longName.getDescription()).hasSizeLessThanOrEqualTo(1024);
        Status tokenize = tokenizeStatus(TokenizeRequest.newBuilder().setModel("gpt-4").setText("x").build());
        assertThat(tokenize.getCode()).isEqualTo(Status.Code.NOT_FOUND);
        ChatInput chat = ChatInput.newBuilder().addMessages(ChatMessage.newBuilder().setRole("user").setContent("hi")).build();
        Status s = generateStatus(GenerateRequest.newBuilder().setChat(chat).build());
        assertThat(s.getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
        assertThat(s.getDescription()).contains("chat template");
        assertThat(tokenizeStatus(TokenizeRequest.newBuilder().setChat(chat).build()).getCode())
                .isEqualTo(Status.Code.FAILED_PRECONDITION);
        Status tooLong = tokenizeStatus(TokenizeRequest.newBuilder().setText("y".repeat(100_000)).build());
        assertThat(tooLong.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(tooLong.getDescription()).contains("text has 100000 bytes");
    }

    private Status tokenizeStatus(TokenizeRequest r) {
        try {
            stub.tokenize(r);
            return Status.OK;
        } catch (StatusRuntimeException e) {
            return e.getStatus();
        }
    }

    @Test
    void largeMessagesBeyondTheIntakeCap_areResourceExhaustedAtOnce_smallOnesServed() {
        GenerateRequest large = GenerateRequest.newBuilder().setPrompt("z".repeat(300_000)).build();
        try (IntakeLimiter.Permit a = intake.admit(Long.MAX_VALUE); IntakeLimiter.Permit b = intake.admit(Long.MAX_VALUE)) {
            Status s = generateStatus(large);
            assertThat(s.getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
            assertThat(s.getDescription()).contains("retry after 1 s");
            assertThat(tokenizeStatus(TokenizeRequest.newBuilder().setText("z".repeat(300_000)).build()).getCode())
                    .isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
            assertThat(generateStatus(prompt(sampling()).build())).isEqualTo(Status.OK);
        }
        assertThat(generateStatus(large).getCode()).as("a permit is free again").isEqualTo(Status.Code.INVALID_ARGUMENT);
        // The status reaches the client before the handler's permit is closed: wait for it, do not race it.
        await("the large request's permit is returned").atMost(Duration.ofSeconds(10))
                .until(() -> intake.largeInIntake() == 0);
    }


    @Test
    void unparseableOrOversizedMessages_areInvalidArgumentOrResourceExhausted_neverUnknown() {
        MethodDescriptor<byte[], byte[]> raw = RawMessages.raw(GatewayServiceGrpc.getGenerateMethod());
        byte[] notUtf8 = {0x12, 0x02, (byte) 0xC3, 0x28};
        for (byte[] body : List.of(new byte[] {0x12, 0x7F}, notUtf8, new byte[] {0x00})) {
            try {
                ClientCalls.blockingServerStreamingCall(channel, raw, CallOptions.DEFAULT.withDeadlineAfter(30,
                        TimeUnit.SECONDS), body).forEachRemaining(m -> { });
                throw new AssertionError("accepted");
            } catch (StatusRuntimeException e) {
                assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                assertThat(e.getStatus().getDescription()).startsWith(
                        "the request is not a valid moemesh.gateway.v1.GenerateRequest: ");
            }
        }
        Status big = generateStatus(GenerateRequest.newBuilder().setPrompt("w".repeat(5 << 20)).build());
        assertThat(big.getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
        assertThat(generateStatus(prompt(sampling()).build())).isEqualTo(Status.OK);
    }
    /** Starts {@code method}'s call, sends {@code messages}, each at once, half-closes when asked; how it ended. */
    private <Q, R> Status callSending(MethodDescriptor<Q, R> method, List<Q> messages, boolean halfClose) {
        ClientCall<Q, R> c = channel.newCall(method.toBuilder().setType(MethodDescriptor.MethodType.BIDI_STREAMING)
                .build(), CallOptions.DEFAULT.withDeadlineAfter(30, TimeUnit.SECONDS));
        CompletableFuture<Status> closed = new CompletableFuture<>();
        c.start(new ClientCall.Listener<>() {
            @Override
            public void onClose(Status status, Metadata trailers) {
                closed.complete(status);
            }
        }, new Metadata());
        c.request(Integer.MAX_VALUE);
        messages.forEach(c::sendMessage);
        if (halfClose) {
            c.halfClose();
        }
        return closed.join();
    }

    static Stream<Arguments> methods() {
        return Stream.of(
                Arguments.of(Named.of("Generate", GatewayServiceGrpc.getGenerateMethod()), prompt(sampling()).build()),
                Arguments.of(Named.of("Tokenize", GatewayServiceGrpc.getTokenizeMethod()),
                        TokenizeRequest.newBuilder().setText("hi").build()),
                Arguments.of(Named.of("ModelInfo", GatewayServiceGrpc.getModelInfoMethod()),
                        ModelInfoRequest.getDefaultInstance()));
    }

    /** grpc-java's stubs would answer INTERNAL "Half-closed without a request", which gateway.proto keeps for bugs. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("methods")
    <Q> void aCallEndingItsRequestWithoutAMessage_isInvalidArgument_namingTheMissingRequest(
            MethodDescriptor<Q, ?> method, Q request) {
        Status s = callSending(method, List.of(), true);

        assertThat(s.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(s.getDescription()).isEqualTo("the call ended its request without a moemesh.gateway.v1."
                + request.getClass().getSimpleName() + ": " + method.getFullMethodName() + " takes exactly one");
    }

    /** grpc-java would reset the stream: a bare CANCELLED, as if the client had cancelled the call itself. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("methods")
    <Q> void aSecondRequestMessage_isInvalidArgument_namingTheRule_halfClosedOrNot(MethodDescriptor<Q, ?> method,
                                                                                  Q request) {
        for (boolean halfClose : List.of(true, false)) {
            Status s = callSending(method, List.of(request, request), halfClose);

            assertThat(s.getCode()).as("half-closed " + halfClose).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(s.getDescription()).isEqualTo("the call sent a second moemesh.gateway.v1."
                    + request.getClass().getSimpleName() + ": " + method.getFullMethodName() + " takes exactly one");
        }
        assertThat(generateStatus(prompt(sampling()).build())).as("the server still serves").isEqualTo(Status.OK);
    }

    /**
     * Calls that send a message of almost max-request-bytes and never half-close (as a bidi stream: grpc-java's own
     * client sends such a message only with its half-close; the server does not check what type the client took the
     * method for). gRPC reads each whole and holds it: at the budget this class sets, 8 messages of the largest
     * size, eight fit and the ninth is the one reset. The half-close bound (30 s by default) closes none meanwhile.
     */
    @Test
    void requestBytesHeldBeforeHalfClose_pastTheBudget_resetTheCallThatPushedPast_resourceExhaustedNamingTheSetting() {
        int bytes = 4_000_000;
        assertThat(held.max()).as("set above").isEqualTo(8L * 4194304);
        FunctionCounter resets = meters.find("moemesh_gateway_grpc_held_request_resets").functionCounter();
        double resetsBefore = resets.count();
        await().atMost(Duration.ofSeconds(20)).until(() -> held.held() == 0); // earlier tests' calls have ended
        GenerateRequest message = GenerateRequest.newBuilder().setPrompt("hi").setUnknownFields(UnknownFieldSet
                .newBuilder().addField(1000, UnknownFieldSet.Field.newBuilder()
                        .addLengthDelimited(ByteString.copyFrom(new byte[bytes])).build()).build()).build();
        List<ClientCall<GenerateRequest, GenerateResponse>> calls = new ArrayList<>();
        List<CompletableFuture<Status>> closed = new ArrayList<>();
        try {
            for (int i = 0; i < 9; i++) {
                CompletableFuture<Status> c = new CompletableFuture<>();
                ClientCall<GenerateRequest, GenerateResponse> call = channel.newCall(GatewayServiceGrpc
                        .getGenerateMethod().toBuilder().setType(MethodDescriptor.MethodType.BIDI_STREAMING).build(),
                        CallOptions.DEFAULT);
                call.start(new ClientCall.Listener<>() {
                    @Override
                    public void onClose(Status status, Metadata trailers) {
                        c.complete(status);
                    }
                }, new Metadata());
                call.request(1);
                call.sendMessage(message);
                calls.add(call);
                closed.add(c);
                if (i < 8) {
                    long expected = (long) (i + 1) * message.getSerializedSize();
                    await().atMost(Duration.ofSeconds(20)).until(() -> held.held() == expected);
                }
            }

            assertThat(closed.get(8)).succeedsWithin(Duration.ofSeconds(20))
                    .satisfies(s -> assertThat(s.getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED))
                    .satisfies(s -> assertThat(s.getDescription())
                            .contains("moemesh.gateway.admission.max-held-request-bytes"));
            assertThat(resets.count()).isEqualTo(resetsBefore + 1);
            assertThat(held.held()).as("the ninth's bytes given back").isEqualTo(8L * message.getSerializedSize());
            assertThat(closed.subList(0, 8)).allSatisfy(c -> assertThat(c).isNotDone());
        } finally {
            calls.forEach(c -> c.cancel("the test is done", null));
        }
        await().atMost(Duration.ofSeconds(20)).until(() -> held.held() == 0);
    }
}
