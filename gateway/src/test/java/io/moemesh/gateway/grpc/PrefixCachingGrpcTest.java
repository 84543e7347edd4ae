package io.moemesh.gateway.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.model.MoeModel;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.Generator;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.TokenListener;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.PromptIds;
import io.moemesh.proto.gateway.v1.Usage;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * Prefix caching through the public gRPC API (experts in-process): {@code Usage.cached_prompt_tokens} is filled,
 * a hit gives the reference engine's tokens, and a traced request computes every position.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class PrefixCachingGrpcTest {
    private static final String MODEL = TestModels.MIXTRAL;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("moemesh.gateway.step-token-budget", () -> "32");
    }

    @Autowired
    GrpcServerLifecycle server;

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

    /**
     * {@code n - 1} ids of the tiny vocabulary (not its special ids 0 and 1); the gateway prepends BOS, so the
     * prompt is {@code n} tokens. Each seed its own prompt.
     */
    private static List<Integer> prompt(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        List<Integer> ids = new ArrayList<>();
        for (int i = 1; i < n; i++) {
            ids.add(2 + r.nextInt(510));
        }
        return ids;
    }

    private List<GenerateResponse> generate(List<Integer> ids, int maxTokens, boolean trace) {
        List<GenerateResponse> out = new ArrayList<>();
        stub.withDeadlineAfter(60, TimeUnit.SECONDS).generate(GenerateRequest.newBuilder()
                .setPromptIds(PromptIds.newBuilder().addAllTokenIds(ids))
                .setSampling(io.moemesh.proto.gateway.v1.SamplingParams.newBuilder().setMaxTokens(maxTokens))
                .setTrace(trace).build()).forEachRemaining(out::add);
        return out;
    }

    private static List<Integer> tokens(List<GenerateResponse> msgs) {
        List<Integer> t = new ArrayList<>();
        msgs.forEach(m -> t.addAll(m.getTokenIdsList()));
        return t;
    }

    private static List<Integer> reference(List<Integer> ids, int maxTokens) {
        try (MoeModel model = MoeModel.open(TestModels.dir(MODEL))) {
            int[] prompt = ids.stream().mapToInt(Integer::intValue).toArray();
            int[] out = new Generator(model.localEngine(), model.newCache(1024), 512)
                    .generate(List.of(new GenerationRequest(prompt, SamplingParams.greedy(maxTokens), false)),
                            TokenListener.NONE).getFirst().generatedIds();
            return java.util.Arrays.stream(out).boxed().toList();
        }
    }

    @Test
    void repeatedPrompt_reportsCachedPromptTokens_andGivesTheReferenceTokens() {
        List<Integer> ids = prompt(70, 1);
        List<GenerateResponse> miss = generate(ids, 12, false);
        List<GenerateResponse> hit = generate(ids, 12, false);

        Usage missUsage = miss.getLast().getUsage();
        Usage hitUsage = hit.getLast().getUsage();
        assertThat(missUsage.getPromptTokens()).isEqualTo(70);
        assertThat(missUsage.getCachedPromptTokens()).isZero();
        assertThat(hitUsage.getPromptTokens()).isEqualTo(70);
        // the full 16-token blocks before the last prompt token: 4 of them
        assertThat(hitUsage.getCachedPromptTokens()).isEqualTo(64);
        assertThat(hit.getLast().getTrace().getInputIdsList()).hasSize(70);
        assertThat(tokens(hit)).isEqualTo(tokens(miss)).isEqualTo(reference(hit.getLast().getTrace().getInputIdsList(), 12));
    }

    @Test
    void aTracedRequest_computesEveryPosition_cachedPromptTokensZero_evenWhenItsPromptIsCached() {
        List<Integer> ids = prompt(50, 2);
        generate(ids, 4, false);
        assertThat(generate(ids, 4, false).getLast().getUsage().getCachedPromptTokens()).isEqualTo(48);

        List<GenerateResponse> traced = generate(ids, 4, true);
        assertThat(traced.getLast().getUsage().getCachedPromptTokens()).isZero();
        // the trace covers every prompt position: all of them went through the layers
        assertThat(traced.getLast().getTrace().getRouterTopk(0).getPositionsCount()).isEqualTo(50);
        assertThat(tokens(traced)).isEqualTo(reference(traced.getLast().getTrace().getInputIdsList(), 4));
    }
}
