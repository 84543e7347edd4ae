package io.moemesh.gateway.dispatch;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

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
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.SequenceListener;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.kernel.MatMul;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.service.expert.GrpcInstanceClient;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementTable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.stream.IntStream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Ping-pong micro-batches through the gateway's real mesh dispatch: two stand-in expert-services on real gRPC
 * sockets (every expert on one of them), the engine splitting each step in two ({@link MicroBatching}) with each
 * micro-batch's {@code ExpertBatch} calls in flight while the other's attention runs. Greedy tokens equal those of
 * one batch per step (the stand-ins compute row by row, so here they are bit-identical: docs/engine.md), on the
 * shared tiny models, with contiguous micro-batches and with micro-batches grouped by predicted expert path, with
 * chunked prefill mixed into decode steps; and an instance that goes down fails the requests with nothing left in
 * flight.
 */
class PingPongMeshTest {

    @BeforeAll
    static void warm() {
        MatMul.warmUp();
    }

    private record Mesh(MoeModel model, List<FakeExpertInstance> instances, MeshExpertDispatch dispatch, Engine engine)
            implements AutoCloseable {
        @Override
        public void close() {
            dispatch.close();
            instances.forEach(FakeExpertInstance::close);
            model.close();
        }
    }

    private static Mesh mesh(String name, MicroBatching microBatching) {
        MoeModel model = MoeModel.open(TestModels.dir(name));
        ModelConfig c = model.config();
        List<FakeExpertInstance> instances = IntStream.range(0, 2)
                .mapToObj(i -> new FakeExpertInstance(TestModels.dir(name))).toList();
        List<Instance> ins = IntStream.range(0, 2).mapToObj(i -> Instance.newBuilder().setId("expert-" + i)
                .setEndpoint("127.0.0.1:" + instances.get(i).port()).build()).toList();
        PlacementTable table = PlacementTable.of(EvenPlacement.build(1, ins, c.numLayers(), c.numExperts(),
                c.hasSharedExpert(), 1), c.numLayers(), c.dispatchableExperts());
        MeshExpertDispatch dispatch = new MeshExpertDispatch(c.hiddenSize(), c.numLayers(),
                in -> new ResilientInstance(new GrpcInstanceClient(in.getId(), in.getEndpoint(),
                        InsecureChannelCredentials.create(), DType.DTYPE_F32, 64 << 20), 64, 50, Duration.ofSeconds(5)),
                Duration.ofSeconds(10));
        dispatch.usePlacement(table);
        Engine engine = new Engine(c, model.denseWeights(), dispatch, RouteObserver.NONE, LookaheadObserver.NONE,
                RemoteAttention.NONE, microBatching);
        return new Mesh(model, instances, dispatch, engine);
    }

    /** Six greedy requests of different prompt lengths, a step budget of 24 tokens: prefill chunks join decodes. */
    private static List<Object> generate(Mesh mesh) {
        ModelConfig c = mesh.model().config();
        StepScheduler scheduler = new StepScheduler(mesh.engine(), mesh.model().newCache(512), 24, 8);
        List<CompletableFuture<Object>> done = new ArrayList<>();
        for (int r = 0; r < 6; r++) {
            int[] prompt = new int[3 + 5 * r];
            for (int i = 0; i < prompt.length; i++) {
                prompt[i] = (7 + 13 * r + 29 * i) % c.vocabSize();
            }
            CompletableFuture<Object> f = new CompletableFuture<>();
            done.add(f);
            scheduler.submit(new GenerationRequest(prompt, SamplingParams.greedy(8), false), listener(f));
        }
        while (done.stream().anyMatch(f -> !f.isDone()) && scheduler.step()) {
            // one engine step per iteration
        }
        return done.stream().map(f -> {
            Object o = f.join();
            return o instanceof GenerationResult g ? (Object) java.util.Arrays.toString(g.generatedIds()) : o;
        }).toList();
    }

    @ParameterizedTest(name = "{0}, {1}")
    @CsvSource({TestModels.MIXTRAL + ", contiguous", TestModels.QWEN2_MOE + ", contiguous",
            TestModels.MIXTRAL + ", predicted-path", TestModels.QWEN2_MOE + ", predicted-path"})
    void twoMicroBatches_sameTokensAsOne_throughRealGrpc(String name, String grouping) {
        List<Object> one;
        List<Object> two;
        long overlapped;
        try (Mesh m = mesh(name, MicroBatching.OFF)) {
            one = generate(m);
        }
        try (Mesh m = mesh(name, new MicroBatching(2, 2, grouping))) {
            two = generate(m);
            overlapped = m.engine().expertWaits().overlappedNanos();
            // Each micro-batch's calls went over the sockets: both stand-ins served and nothing is left in flight.
            // (the client counts a call off just after completing its future: await that, not the future.)
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() ->
                    assertThat(m.dispatch().instances()).allSatisfy(i -> assertThat(i.load()).isZero()));
        }
        assertThat(one).allSatisfy(t -> assertThat(t).isInstanceOf(String.class));
        assertThat(two).containsExactlyElementsOf(one);
        assertThat(overlapped).as("engine time computing while another micro-batch's experts were away").isPositive();
    }

    @ParameterizedTest(name = "{0} micro-batches")
    @ValueSource(ints = {1, 2})
    void instanceDown_failsTheRequests_andLeavesNoCallInFlight(int count) {
        try (Mesh m = mesh(TestModels.MIXTRAL, new MicroBatching(count, 2))) {
            m.instances().get(1).down.set(true);
            List<Object> results = generate(m);
            assertThat(results).allSatisfy(r -> assertThat(r).isInstanceOf(ExpertUnavailableException.class));
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() ->
                    assertThat(m.dispatch().instances()).allSatisfy(i -> assertThat(i.load()).isZero()));
        }
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
