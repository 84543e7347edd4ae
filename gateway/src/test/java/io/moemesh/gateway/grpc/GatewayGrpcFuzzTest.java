package io.moemesh.gateway.grpc;

import static io.moemesh.service.testing.RawMessages.mutated;
import static io.moemesh.service.testing.RawMessages.raw;
import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.InvalidProtocolBufferException;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCalls;
import io.moemesh.gateway.GatewayApplication;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.ChatInput;
import io.moemesh.proto.gateway.v1.ChatMessage;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.ModelInfoRequest;
import io.moemesh.proto.gateway.v1.PromptIds;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.proto.gateway.v1.TokenizeRequest;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.testing.CountedProperties;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.AfterProperty;
import net.jqwik.api.lifecycle.BeforeContainer;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * Fuzzing the gateway's public gRPC API on a real gateway: messages with random field values (uint32 fields past
 * 2^31, NaN and infinite floats, ids outside the vocabulary, long stop lists, odd request ids) and the bytes of
 * valid messages mutated (flipped, truncated, inserted, invalid UTF-8 in strings), sent through a raw-bytes
 * marshaller to Generate, Tokenize and ModelInfo. No answer may be UNKNOWN, INTERNAL or DATA_LOSS, and after each
 * property Generate still returns the golden greedy tokens. Cases per property: jqwik's default tries
 * ({@code -Dfuzz.tries}, 1000 in the build); a message that still parses asks for at most 2 tokens.
 */
class GatewayGrpcFuzzTest extends CountedProperties {
    private static final String MODEL = TestModels.QWEN2_MOE;
    private static final Set<Status.Code> SERVER_FAULTS = Set.of(Status.Code.UNKNOWN, Status.Code.INTERNAL,
            Status.Code.DATA_LOSS);
    private static ConfigurableApplicationContext app;
    /** Cases run by the current property: checked against the configured tries after it. */
    private static ManagedChannel channel;

    @BeforeContainer
    static void start() {
        app = new SpringApplicationBuilder(GatewayApplication.class).run(
                "--moemesh.gateway.model-dir=" + TestModels.dir(MODEL), "--moemesh.gateway.grpc-port=0",
                "--server.port=0", "--spring.main.banner-mode=off");
        channel = NettyChannelBuilder.forAddress("127.0.0.1", app.getBean(GrpcServerLifecycle.class).port())
                .usePlaintext().maxInboundMessageSize(64 << 20).build();
    }

    @AfterContainer
    static void stop() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        app.close();
    }


    private static final MethodDescriptor<byte[], byte[]> GENERATE = raw(GatewayServiceGrpc.getGenerateMethod());
    private static final MethodDescriptor<byte[], byte[]> TOKENIZE = raw(GatewayServiceGrpc.getTokenizeMethod());
    private static final MethodDescriptor<byte[], byte[]> MODEL_INFO = raw(GatewayServiceGrpc.getModelInfoMethod());

    private static CallOptions options() {
        return CallOptions.DEFAULT.withDeadlineAfter(30, TimeUnit.SECONDS);
    }

    private static void assertNoServerFault(Status s) {
        assertThat(s.getCode()).as(String.valueOf(s)).isNotIn(SERVER_FAULTS);
        assertThat(String.valueOf(s.getDescription())).doesNotContain("Exception");
    }

    @Property
    void generate_neverAnswersAsAServerFault(@ForAll("generateBytes") byte[] request) {
        countCase();
        try {
            ClientCalls.blockingServerStreamingCall(channel, GENERATE, options(), cheap(request))
                    .forEachRemaining(m -> { });
        } catch (StatusRuntimeException e) {
            assertNoServerFault(e.getStatus());
        }
    }

    @Property
    void tokenize_neverAnswersAsAServerFault(@ForAll("tokenizeBytes") byte[] request) {
        countCase();
        try {
            ClientCalls.blockingUnaryCall(channel, TOKENIZE, options(), request);
        } catch (StatusRuntimeException e) {
            assertNoServerFault(e.getStatus());
        }
    }

    @Property
    void modelInfo_neverAnswersAsAServerFault(@ForAll("modelInfoBytes") byte[] request) {
        countCase();
        try {
            ClientCalls.blockingUnaryCall(channel, MODEL_INFO, options(), request);
        } catch (StatusRuntimeException e) {
            assertNoServerFault(e.getStatus());
        }
    }



    @AfterProperty
    void stillGolden() {
        GoldenCase g = GoldenCase.load(MODEL).get(0);
        List<Integer> ids = new ArrayList<>();
        GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS)
                .generate(GenerateRequest.newBuilder().setPrompt(g.prompt())
                        .setSampling(SamplingParams.newBuilder().setMaxTokens(16)).build())
                .forEachRemaining(m -> ids.addAll(m.getTokenIdsList()));
        assertThat(ids.stream().mapToInt(Integer::intValue).toArray()).containsExactly(g.greedyIds());
        assertThat(GatewayServiceGrpc.newBlockingStub(channel).modelInfo(ModelInfoRequest.getDefaultInstance())
                .getModel()).isEqualTo(MODEL);
    }

    /**
     * A mutated message that still parses keeps its mutations but asks for at most 2 tokens (0 means "to the end
     * of the context"), so a case stays cheap.
     */
    private static byte[] cheap(byte[] request) {
        GenerateRequest r;
        try {
            r = GenerateRequest.parseFrom(request);
        } catch (InvalidProtocolBufferException e) {
            return request;
        }
        long max = Integer.toUnsignedLong(r.getSampling().getMaxTokens());
        if (max == 0 || (max > 2 && max <= Integer.MAX_VALUE)) {
            return r.toBuilder().setSampling(r.getSampling().toBuilder().setMaxTokens(2)).build().toByteArray();
        }
        return request;
    }

    // ---------------------------------------------------------------------------------------------------------
    // Generators
    // ---------------------------------------------------------------------------------------------------------

    private static Arbitrary<String> text() {
        return Arbitraries.oneOf(Arbitraries.strings().ofMaxLength(24).filter(GatewayGrpcFuzzTest::wellFormed),
                Arbitraries.of("", "gRPC", "<|im_start|>", "<|endoftext|>", "é\u0301", "😀", "\u0000", "a\nb",
                        "r".repeat(129)));
    }

    /** Protobuf refuses to serialise a string with a lone surrogate; invalid UTF-8 comes from byte mutations. */
    private static boolean wellFormed(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                return false;
            }
        }
        return true;
    }

    private static Arbitrary<Integer> uint32() {
        return Arbitraries.oneOf(Arbitraries.integers().between(0, 8),
                Arbitraries.of(-1, Integer.MIN_VALUE, Integer.MAX_VALUE, 5, 6, 1 << 20, 511, 512, 513));
    }

    private static Arbitrary<Float> floats() {
        return Arbitraries.oneOf(Arbitraries.floats().between(-3, 3),
                Arbitraries.of(Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, -0f, 0f, 1f, 1.0001f,
                        Float.MIN_VALUE, Float.MAX_VALUE));
    }

    private static Arbitrary<SamplingParams> sampling() {
        return Combinators.combine(Arbitraries.of(0, 1, 2, -1, Integer.MIN_VALUE), floats(), floats(), uint32(),
                        Arbitraries.longs().injectNull(0.5), text().list().ofMaxSize(18), uint32(),
                        Arbitraries.of(true, false))
                .as((max, temperature, topP, topK, seed, stop, logprobs, ignoreEos) -> {
                    SamplingParams.Builder b = SamplingParams.newBuilder().setMaxTokens(max).setTemperature(temperature)
                            .setTopP(topP).setTopK(topK).addAllStop(stop).setLogprobs(logprobs).setIgnoreEos(ignoreEos);
                    if (seed != null) {
                        b.setSeed(seed);
                    }
                    return b.build();
                });
    }

    private static Arbitrary<ChatInput> chat() {
        return Combinators.combine(text(), text()).as((role, content) -> ChatMessage.newBuilder().setRole(role)
                        .setContent(content).build()).list().ofMaxSize(4)
                .map(m -> ChatInput.newBuilder().addAllMessages(m).build());
    }

    private static Arbitrary<GenerateRequest> generateRequests() {
        Arbitrary<Integer> ids = Arbitraries.oneOf(Arbitraries.integers().between(0, 2000),
                Arbitraries.of(-1, Integer.MIN_VALUE, Integer.MAX_VALUE));
        Arbitrary<Integer> inputKind = Arbitraries.integers().between(0, 3);
        return Combinators.combine(inputKind, text(), ids.list().ofMaxSize(8), chat(), sampling(),
                        Arbitraries.of("", MODEL, "gpt-4", "m".repeat(20_000)), text(), Arbitraries.of(true, false))
                .as((kind, prompt, promptIds, chat, sampling, model, requestId, trace) -> {
                    GenerateRequest.Builder b = GenerateRequest.newBuilder().setModel(model).setSampling(sampling)
                            .setRequestId(requestId).setTrace(trace);
                    switch (kind) {
                        case 0 -> b.setPrompt(prompt);
                        case 1 -> b.setPromptIds(PromptIds.newBuilder().addAllTokenIds(promptIds));
                        case 2 -> b.setChat(chat);
                        default -> { }
                    }
                    return b.build();
                });
    }


    @Provide
    Arbitrary<byte[]> generateBytes() {
        return mutated(generateRequests().map(GenerateRequest::toByteArray));
    }

    @Provide
    Arbitrary<byte[]> tokenizeBytes() {
        Arbitrary<TokenizeRequest> requests = Combinators.combine(Arbitraries.integers().between(0, 2), text(), chat(),
                Arbitraries.of("", MODEL, "other"), Arbitraries.of(0, 1, 2)).as((kind, text, chat, model, bos) -> {
                    TokenizeRequest.Builder b = TokenizeRequest.newBuilder().setModel(model);
                    switch (kind) {
                        case 0 -> b.setText(text);
                        case 1 -> b.setChat(chat);
                        default -> { }
                    }
                    if (bos > 0) {
                        b.setAddBos(bos == 1);
                    }
                    return b.build();
                });
        return mutated(requests.map(TokenizeRequest::toByteArray));
    }

    @Provide
    Arbitrary<byte[]> modelInfoBytes() {
        return mutated(text().map(m -> ModelInfoRequest.newBuilder().setModel(m).build().toByteArray()));
    }
}
