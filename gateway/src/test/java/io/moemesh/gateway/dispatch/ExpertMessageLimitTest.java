package io.moemesh.gateway.dispatch;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.github.resilience4j.circuitbreaker.CircuitBreaker.State;
import io.grpc.InsecureChannelCredentials;
import io.moemesh.gateway.support.FakeExpertInstance;
import io.moemesh.model.MoeModel;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.engine.Engine;
import io.moemesh.model.engine.LookaheadObserver;
import io.moemesh.model.engine.MicroBatching;
import io.moemesh.model.engine.RemoteAttention;
import io.moemesh.model.engine.RouteObserver;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.Generator;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.SequenceListener;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.generate.TokenListener;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.service.expert.GrpcInstanceClient;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementTable;
import io.moemesh.service.settings.SettingRefusedException;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * An instance's rows go in messages small enough for the gRPC message limit: a reply over the gateway's
 * max-inbound-message-bytes would be refused with RESOURCE_EXHAUSTED, ending the instance's whole stream (every call
 * on it, the other micro-batch's too). Here through a stand-in expert-service on a real socket and a 64 KiB limit.
 */
class ExpertMessageLimitTest {
    private static final int LIMIT = 64 << 10;

    /**
     * A 400-token prompt's chunk (a reply of 400 × hidden 64 × 4 bytes = 100 KiB) joins a step while another
     * sequence decodes, with two micro-batches: both get the tokens the reference engine generates alone.
     */
    @Test
    void promptChunkWhoseReplyExceedsTheMessageLimit_goesInSeveralMessages_andBothSequencesGetTheReferenceTokens() {
        try (MoeModel model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL));
             FakeExpertInstance expert = new FakeExpertInstance(TestModels.dir(TestModels.MIXTRAL))) {
            ModelConfig c = model.config();
            int maxRows = ExpertBatches.maxRowsPerCall(LIMIT, c.hiddenSize(), 4, c.pairsPerToken());
            assertThat(maxRows).as("the long prompt's chunk needs several messages").isLessThan(400);
            List<Instance> ins = List.of(Instance.newBuilder().setId("expert-0")
                    .setEndpoint("127.0.0.1:" + expert.port()).build());
            PlacementTable table = PlacementTable.of(EvenPlacement.build(1, ins, c.numLayers(), c.numExperts(),
                    c.hasSharedExpert(), 1), c.numLayers(), c.dispatchableExperts());
            try (MeshExpertDispatch dispatch = new MeshExpertDispatch(c.hiddenSize(),
                    in -> new ResilientInstance(new GrpcInstanceClient(in.getId(), in.getEndpoint(),
                            InsecureChannelCredentials.create(), DType.DTYPE_F32, LIMIT), 64, 50, Duration.ofSeconds(5)),
                    Duration.ofSeconds(10), ReplicaPicker.PREFER_VISITED, new DispatchTraces(c.numLayers(), 8), maxRows)) {
                dispatch.usePlacement(table);
                Engine engine = new Engine(c, model.denseWeights(), dispatch, RouteObserver.NONE,
                        LookaheadObserver.NONE, RemoteAttention.NONE, new MicroBatching(2, 2));
                StepScheduler scheduler = new StepScheduler(engine, model.newCache(1024), 512, 8);
                GenerationRequest decoding = request(5, 3, 12);
                GenerationRequest longPrompt = request(400, 11, 6);

                CompletableFuture<Object> first = new CompletableFuture<>();
                scheduler.submit(decoding, listener(first));
                scheduler.step();
                scheduler.step();
                CompletableFuture<Object> second = new CompletableFuture<>();
                scheduler.submit(longPrompt, listener(second));
                for (int i = 0; i < 100 && !(first.isDone() && second.isDone()); i++) {
                    scheduler.step();
                }

                assertThat(first.join()).isInstanceOfSatisfying(GenerationResult.class, r ->
                        assertThat(r.generatedIds()).containsExactly(alone(model, decoding)));
                assertThat(second.join()).isInstanceOfSatisfying(GenerationResult.class, r ->
                        assertThat(r.generatedIds()).containsExactly(alone(model, longPrompt)));
                assertThat(dispatch.instances()).singleElement().satisfies(i -> assertThat(i.state())
                        .isEqualTo(State.CLOSED));
            }
        }
    }

    @Test
    void messageLimitTooSmallForOneRow_refusedNamingBothSettings() {
        assertThat(ExpertBatches.maxRowsPerCall(64 << 20, 4096, 4, 3)).isEqualTo(((64 << 20) - 4096) / (4096 * 4 + 5 + 27));
        assertThat(ExpertBatches.maxRowsPerCall(64 << 20, 4096, 2, 3)).isEqualTo(((64 << 20) - 4096) / (4096 * 2 + 5 + 27));
        assertThatThrownBy(() -> ExpertBatches.maxRowsPerCall(65536, 16384, 4, 8))
                .isInstanceOfSatisfying(SettingRefusedException.class,
                        e -> assertThat(e.setting()).isEqualTo("moemesh.gateway.max-inbound-message-bytes"))
                .hasMessage("moemesh.gateway.max-inbound-message-bytes (65536) cannot hold one token row of this model "
                        + "(hidden size 16384) in moemesh.gateway.dispatch.wire-dtype f32: it needs at least 69709 bytes");
    }

    private static GenerationRequest request(int length, int seed, int maxTokens) {
        int[] prompt = new int[length];
        for (int i = 0; i < length; i++) {
            prompt[i] = (seed + 29 * i) % 500 + 2;
        }
        return new GenerationRequest(prompt, SamplingParams.greedy(maxTokens), false);
    }

    private static int[] alone(MoeModel model, GenerationRequest r) {
        return new Generator(model.localEngine(), model.newCache(1024), 512).generate(List.of(r), TokenListener.NONE)
                .getFirst().generatedIds();
    }

    private static SequenceListener listener(CompletableFuture<Object> done) {
        return new SequenceListener() {
            @Override
            public void onToken(int token) {
            }

            @Override
            public void onFinish(GenerationResult result) {
                done.complete(result);
            }

            @Override
            public void onError(Throwable error) {
                done.complete(error);
            }
        };
    }
}
