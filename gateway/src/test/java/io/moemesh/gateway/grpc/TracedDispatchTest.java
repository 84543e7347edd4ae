package io.moemesh.gateway.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.StreamObserver;
import io.moemesh.gateway.support.ScratchPlacement;
import io.moemesh.gateway.dispatch.DispatchTraces;
import io.moemesh.gateway.support.FakeExpertInstance;
import io.moemesh.model.MoeModel;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepOutput;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.FinishReason;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.InstanceDispatch;
import io.moemesh.proto.gateway.v1.LayerDispatch;
import io.moemesh.proto.gateway.v1.LayerRoutes;
import io.moemesh.proto.gateway.v1.PositionRoutes;
import io.moemesh.proto.gateway.v1.PromptIds;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.proto.gateway.v1.TraceInfo;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementFiles;
import io.moemesh.service.placement.PlacementTable;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * A trace's {@code dispatch} keeps gateway.proto's contract under batching, chunked prefill and preemption: it
 * counts only the request's own prompt rows, all chunks together, each position once. The gateway runs
 * qwen2moe-tiny (shared expert included) against three stand-in expert-services on real sockets, every expert on
 * exactly one of them (so what a request's {@code router_topk} implies about where its rows went is
 * deterministic), with a step token budget of 5 (every prompt but the shortest is chunked) and a KV pool of 256
 * positions (16 blocks), small enough to force preemption.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class TracedDispatchTest {
    private static final String MODEL = TestModels.QWEN2_MOE;
    private static final int KV_TOKENS = 256;
    private static List<FakeExpertInstance> instances;
    private static PlacementTable table;
    private static Path placementFile;

    @Autowired
    io.moemesh.service.grpc.GrpcServerLifecycle server;
    @Autowired
    DispatchTraces traces;
    @Autowired
    MoeModel model;

    private ManagedChannel channel;
    private GatewayServiceGrpc.GatewayServiceStub stub;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("moemesh.gateway.placement-file", () -> placement().toString());
        // The stand-ins listen without TLS; the gateway uses plaintext only when told so.
        r.add("moemesh.gateway.tls.mode", () -> "plaintext");
        r.add("moemesh.gateway.step-token-budget", () -> "5");
        r.add("moemesh.gateway.kv-cache-tokens", () -> String.valueOf(KV_TOKENS));
    }

    /** Three stand-ins, every expert (the shared one too) on exactly one of them. */
    static synchronized Path placement() {
        if (placementFile == null) {
            Path dir = TestModels.dir(MODEL);
            instances = IntStream.range(0, 3).mapToObj(i -> new FakeExpertInstance(dir)).toList();
            List<Instance> ins = IntStream.range(0, 3).mapToObj(i -> Instance.newBuilder().setId("expert-" + i)
                    .setEndpoint("127.0.0.1:" + instances.get(i).port()).build()).toList();
            ModelConfig c = io.moemesh.model.config.ModelConfigReader.read(dir);
            var p = EvenPlacement.build(1, ins, c.numLayers(), c.numExperts(), c.hasSharedExpert(), 1);
            table = PlacementTable.of(p, c.numLayers(), c.dispatchableExperts());
            placementFile = ScratchPlacement.file("traced-dispatch");
            PlacementFiles.write(placementFile, p);
        }
        return placementFile;
    }

    @BeforeAll
    void connect() {
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        stub = GatewayServiceGrpc.newStub(channel);
    }

    @AfterAll
    void close() {
        channel.shutdownNow();
        instances.forEach(FakeExpertInstance::close);
    }

    /** One streamed call: its first message (sent when the request joined the engine) and all of them. */
    private record Call(CompletableFuture<GenerateResponse> first, CompletableFuture<List<GenerateResponse>> all) {
        GenerateResponse last() {
            return all.orTimeout(120, TimeUnit.SECONDS).join().getLast();
        }
    }

    private Call generate(int[] promptIds, int maxTokens, boolean trace) {
        CompletableFuture<GenerateResponse> first = new CompletableFuture<>();
        CompletableFuture<List<GenerateResponse>> all = new CompletableFuture<>();
        List<GenerateResponse> msgs = new ArrayList<>();
        GenerateRequest.Builder b = GenerateRequest.newBuilder().setTrace(trace)
                .setPromptIds(PromptIds.newBuilder().addAllTokenIds(IntStream.of(promptIds).boxed().toList()))
                .setSampling(SamplingParams.newBuilder().setMaxTokens(maxTokens).setIgnoreEos(true));
        stub.generate(b.build(), new StreamObserver<>() {
            @Override
            public void onNext(GenerateResponse r) {
                msgs.add(r);
                first.complete(r);
            }

            @Override
            public void onError(Throwable t) {
                first.completeExceptionally(t);
                all.completeExceptionally(t);
            }

            @Override
            public void onCompleted() {
                all.complete(msgs);
            }
        });
        return new Call(first, all);
    }

    private int[] prompt(int length, long seed) {
        Random r = new Random(seed);
        // Ids from 10 on: no special token (BOS, EOS) among them.
        return IntStream.range(0, length).map(i -> 10 + r.nextInt(model.config().vocabSize() - 10)).toArray();
    }

    /**
     * What the request's own routes and the placement imply, per layer: for every instance that holds one of a
     * position's experts (its top-k plus the shared expert), the positions that visit it and the experts applied;
     * instances no position visits are absent. Layers ascending, instances ascending by id.
     */
    private List<LayerDispatch> implied(TraceInfo t) {
        ModelConfig c = model.config();
        List<LayerDispatch> out = new ArrayList<>();
        for (LayerRoutes lr : t.getRouterTopkList()) {
            int layer = lr.getLayer();
            Map<String, int[]> rows = new TreeMap<>();
            Map<String, TreeSet<Integer>> experts = new TreeMap<>();
            for (PositionRoutes pr : lr.getPositionsList()) {
                List<Integer> es = new ArrayList<>(pr.getExpertsList());
                if (c.hasSharedExpert()) {
                    es.add(c.numExperts());
                }
                Set<String> visits = new TreeSet<>();
                for (int e : es) {
                    assertThat(table.holders()[layer][e]).as("one holder per expert").hasSize(1);
                    String id = table.instances().get(table.holders()[layer][e][0]).getId();
                    visits.add(id);
                    experts.computeIfAbsent(id, k -> new TreeSet<>()).add(e);
                }
                visits.forEach(id -> rows.computeIfAbsent(id, k -> new int[1])[0]++);
            }
            LayerDispatch.Builder ld = LayerDispatch.newBuilder().setLayer(layer);
            rows.forEach((id, n) -> ld.addInstances(InstanceDispatch.newBuilder().setInstanceId(id).setTokenCount(n[0])
                    .addAllExperts(experts.get(id))));
            out.add(ld.build());
        }
        return out;
    }

    /** The trace of a completed traced request: its dispatch is exactly what its routes imply. */
    private void assertDispatchImplied(GenerateResponse last, int promptTokens) {
        assertThat(last.getFinishReason()).isEqualTo(FinishReason.FINISH_REASON_LENGTH);
        TraceInfo t = last.getTrace();
        assertThat(t.getInputIdsCount()).isEqualTo(promptTokens);
        assertThat(t.getPlacementEpoch()).isEqualTo(1);
        assertThat(t.getRouterTopkCount()).isEqualTo(model.config().numLayers());
        assertThat(t.getRouterTopkList()).allSatisfy(l -> assertThat(l.getPositionsCount()).isEqualTo(promptTokens));
        assertThat(t.getDispatchList()).as("dispatch of a %d-token prompt", promptTokens).isEqualTo(implied(t));
    }

    @Test
    void concurrentRequests_chunkedAndBatched_eachTraceCountsExactlyItsOwnPromptRows() {
        int[] lengths = {3, 7, 12, 20, 33, 41, 50, 64};
        List<Call> calls = new ArrayList<>();
        List<int[]> prompts = new ArrayList<>();
        for (int i = 0; i < lengths.length; i++) {
            prompts.add(prompt(lengths[i], i));
            calls.add(generate(prompts.get(i), 3 + i % 4, i % 2 == 1));
        }
        for (int i = 0; i < lengths.length; i++) {
            GenerateResponse last = calls.get(i).last();
            if (i % 2 == 1) {
                assertDispatchImplied(last, calls.get(i).first().join().getPromptTokens());
            } else {
                assertThat(last.getTrace().getDispatchCount()).as("untraced").isZero();
            }
        }
        assertThat(traces.held()).as("every record taken or discarded").isZero();
    }

    @Test
    void promptPreemptedDuringItsPrefill_andRecomputed_countsEachRowOnce() {
        long before = traces.rerecorded();
        // A long untraced generation that will want the whole KV pool (20 + 232 positions of 256) ...
        Call hog = generate(prompt(20, 100), 232, false);
        hog.first().orTimeout(60, TimeUnit.SECONDS).join();
        // ... and, joining after it, a traced prompt that needs 15 of the 16 blocks: it cannot finish its prefill
        // while the first runs, and is the newest sequence whenever the first needs another block, so it is
        // preempted mid-prefill (its rows computed again later) until the first one ends.
        int[] ids = prompt(236, 101);
        Call traced = generate(ids, 4, true);

        assertDispatchImplied(traced.last(), traced.first().join().getPromptTokens());
        assertThat(hog.last().getUsage().getCompletionTokens()).isEqualTo(232);
        assertThat(traces.rerecorded()).as("the traced prompt was recomputed after a preemption").isGreaterThan(before);
        assertThat(traces.held()).isZero();
    }

    @Test
    void tracedRequestCancelledByItsClient_itsDispatchRecordIsDiscarded() {
        CompletableFuture<ClientCallStreamObserver<GenerateRequest>> call = new CompletableFuture<>();
        CompletableFuture<Throwable> ended = new CompletableFuture<>();
        int[] ids = prompt(20, 300);
        stub.generate(GenerateRequest.newBuilder().setTrace(true)
                .setPromptIds(PromptIds.newBuilder().addAllTokenIds(IntStream.of(ids).boxed().toList()))
                .setSampling(SamplingParams.newBuilder().setMaxTokens(200).setIgnoreEos(true)).build(),
                new ClientResponseObserver<GenerateRequest, GenerateResponse>() {
                    @Override
                    public void beforeStart(ClientCallStreamObserver<GenerateRequest> requests) {
                        call.complete(requests);
                    }

                    @Override
                    public void onNext(GenerateResponse r) {
                    }

                    @Override
                    public void onError(Throwable t) {
                        ended.complete(t);
                    }

                    @Override
                    public void onCompleted() {
                        ended.complete(null);
                    }
                });
        // The record exists from the prompt pass until the request ends (here: 200 decode steps later).
        await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(5)).until(() -> traces.held() == 1);
        call.join().cancel("the client went away", null);

        assertThat(ended.orTimeout(30, TimeUnit.SECONDS).join()).as("the call ended by the cancellation").isNotNull();
        await().atMost(Duration.ofSeconds(30)).until(() -> traces.held() == 0);
    }

    @Test
    void routeWeights_areTheReferenceEnginesCombineWeights() {
        int[] ids = prompt(30, 200);
        TraceInfo t = generate(ids, 2, true).last().getTrace();
        int[] inputIds = t.getInputIdsList().stream().mapToInt(Integer::intValue).toArray();
        StepOutput ref = model.localEngine().step(List.of(new SequenceStep(1, inputIds, 0, SequenceStep.Logits.LAST,
                true)), model.newCache(64)).getFirst();
        int k = model.config().topK();
        for (LayerRoutes lr : t.getRouterTopkList()) {
            for (int p = 0; p < inputIds.length; p++) {
                PositionRoutes pr = lr.getPositions(p);
                assertThat(pr.getExpertsList()).containsExactly(IntStream.of(ref.routes()[lr.getLayer()][p]).boxed()
                        .toArray(Integer[]::new));
                assertThat(pr.getWeightsCount()).isEqualTo(k);
                float sum = 0;
                for (int j = 0; j < k; j++) {
                    assertThat(pr.getWeights(j)).isCloseTo(ref.routeWeights()[lr.getLayer()][p][j], within(1e-5f));
                    sum += pr.getWeights(j);
                }
                // Qwen2-MoE without norm_topk_prob: softmax over all experts, not renormalised over the top-k.
                assertThat(sum).isLessThan(1f);
            }
        }
    }
}
