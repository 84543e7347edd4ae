package io.moemesh.gateway.dispatch;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;
import static org.awaitility.Awaitility.await;

import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.grpc.InsecureChannelCredentials;
import io.moemesh.gateway.support.FakeExpertInstance;
import io.moemesh.model.MoeModel;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.engine.Engine;
import io.moemesh.model.engine.ForwardingKvCache;
import io.moemesh.model.engine.PagedKvCache;
import io.moemesh.model.engine.RemoteAttention;
import io.moemesh.model.engine.RemoteAttentionBatch;
import io.moemesh.model.engine.RemoteAttentionException;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepOutput;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.PreemptionPolicy;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.SequenceListener;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.PrefetchRequest;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.service.expert.GrpcInstanceClient;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementTable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Lookahead prefetch through real gRPC: two stand-in expert services on real sockets, the gateway's real
 * {@link GrpcInstanceClient} behind {@link ResilientInstance}, the engine computing the golden prompts. Hints
 * reach the instance that later computes each true route; tokens never depend on them; a failing Prefetch
 * never fails a step nor opens a breaker.
 */
class LookaheadPrefetchTest {

    private record Mesh(MoeModel model, List<FakeExpertInstance> fakes, MeshExpertDispatch dispatch,
                        LookaheadPrefetch prefetch, Engine engine) implements AutoCloseable {
        @Override
        public void close() {
            dispatch.close();
            fakes.forEach(FakeExpertInstance::close);
            model.close();
        }
    }

    /** Two fake instances on real sockets, every expert once (even deal), a lookahead of {@code guesses} per row. */
    private static Mesh mesh(String modelName, int guesses) {
        MoeModel model = MoeModel.open(TestModels.dir(modelName));
        var c = model.config();
        List<FakeExpertInstance> fakes = List.of(new FakeExpertInstance(TestModels.dir(modelName)),
                new FakeExpertInstance(TestModels.dir(modelName)));
        MeshExpertDispatch d = new MeshExpertDispatch(c.hiddenSize(), in -> new ResilientInstance(
                new GrpcInstanceClient(in.getId(), in.getEndpoint(), InsecureChannelCredentials.create(), DType.DTYPE_F32,
                        64 << 20), 8, 50, Duration.ofSeconds(30)), Duration.ofSeconds(30), ReplicaPicker.PREFER_VISITED,
                new DispatchTraces(c.numLayers(), 8));
        List<Instance> ins = List.of(
                Instance.newBuilder().setId("fake-0").setEndpoint("127.0.0.1:" + fakes.get(0).port()).build(),
                Instance.newBuilder().setId("fake-1").setEndpoint("127.0.0.1:" + fakes.get(1).port()).build());
        d.usePlacement(PlacementTable.of(EvenPlacement.build(1, ins, c.numLayers(), c.numExperts(), c.hasSharedExpert(), 1),
                c.numLayers(), c.dispatchableExperts()));
        LookaheadPrefetch prefetch = new LookaheadPrefetch(d, guesses, c.topK(),
                c.hasSharedExpert() ? c.numExperts() : -1, 64);
        return new Mesh(model, fakes, d, prefetch, model.engine(d, prefetch, prefetch));
    }

    private static StepOutput goldenStep(Mesh mesh, GoldenCase g) {
        StepOutput out = mesh.engine().step(List.of(new SequenceStep(1, g.inputIds(), 0, SequenceStep.Logits.LAST, true)),
                mesh.model().newCache(256)).getFirst();
        assertThat(out.logits()).containsExactly(g.lastLogits(), within(1e-4f));
        return out;
    }

    private static Set<String> hinted(FakeExpertInstance fake) {
        Set<String> s = new HashSet<>();
        for (PrefetchRequest r : fake.prefetches) {
            for (ExpertRef e : r.getExpertsList()) {
                s.add(e.getLayer() + "/" + e.getExpert());
            }
        }
        return s;
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {TestModels.MIXTRAL, TestModels.QWEN2_MOE})
    void hints_reachTheInstanceThatComputesEachTrueRoute_beforeItsLayer_goldenLogits(String modelName) {
        // With every expert guessed, the lookahead covers every true route: each (layer ≥ 1, expert) the dispatch
        // sent to an instance was hinted to that same instance, the shared expert of Qwen2-MoE included.
        int experts = ModelConfigReader.read(TestModels.dir(modelName)).numExperts();
        try (Mesh mesh = mesh(modelName, experts)) {
            GoldenCase g = GoldenCase.load(modelName).getFirst();
            goldenStep(mesh, g);
            PromptDispatch where = mesh.dispatch().traces().take(1);
            Map<String, FakeExpertInstance> byId = Map.of("fake-0", mesh.fakes().get(0), "fake-1", mesh.fakes().get(1));
            await().until(() -> mesh.prefetch().requestsSent() == mesh.fakes().get(0).prefetches.size()
                    + mesh.fakes().get(1).prefetches.size());
            int checked = 0;
            for (LayerDispatchRecord layer : where.layers()) {
                if (layer.layer() == 0) {
                    continue;
                }
                for (var sent : layer.instances()) {
                    Set<String> hints = hinted(byId.get(sent.instanceId()));
                    for (int e : sent.experts()) {
                        assertThat(hints).as("layer %d expert %d on %s", layer.layer(), e, sent.instanceId())
                                .contains(layer.layer() + "/" + e);
                        checked++;
                    }
                }
            }
            assertThat(checked).isPositive();
            assertThat(hinted(mesh.fakes().get(0))).noneMatch(h -> h.startsWith("0/"));
            assertThat(mesh.prefetch().requestsFailed()).isZero();
            assertThat(mesh.prefetch().hits()).as("all experts guessed: recall 1")
                    .isEqualTo(mesh.prefetch().trueExperts()).isPositive();
        }
    }

    @Test
    void hints_carryThePlacementEpoch_andEachInstanceGetsOneCallPerLayer_withDistinctExperts() {
        try (Mesh mesh = mesh(TestModels.MIXTRAL, 2)) {
            GoldenCase g = GoldenCase.load(TestModels.MIXTRAL).getFirst();
            goldenStep(mesh, g);
            await().until(() -> mesh.prefetch().requestsSent() == mesh.fakes().get(0).prefetches.size()
                    + mesh.fakes().get(1).prefetches.size());
            for (FakeExpertInstance f : mesh.fakes()) {
                List<Integer> layers = new ArrayList<>();
                for (PrefetchRequest r : f.prefetches) {
                    assertThat(r.getPlacementEpoch()).isEqualTo(1);
                    assertThat(r.getExpertsList()).doesNotHaveDuplicates()
                            .extracting(ExpertRef::getLayer).containsOnly(r.getExperts(0).getLayer());
                    layers.add(r.getExperts(0).getLayer());
                }
                assertThat(layers).doesNotHaveDuplicates();
            }
            assertThat(mesh.prefetch().hintsSent()).isPositive();
            assertThat(mesh.prefetch().trueExperts()).isPositive();
            assertThat(mesh.prefetch().hits()).isBetween(0L, mesh.prefetch().trueExperts());
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {TestModels.MIXTRAL, TestModels.MIXTRAL_BF16, TestModels.QWEN2_MOE})
    void tokens_identicalWithPrefetchOnAndOff_everyGoldenCase(String modelName) {
        try (Mesh mesh = mesh(modelName, ModelConfigReader.read(TestModels.dir(modelName)).topK())) {
            Engine off = mesh.model().engine(mesh.dispatch());
            for (GoldenCase g : GoldenCase.load(modelName)) {
                StepOutput on = goldenStep(mesh, g);
                StepOutput without = off.step(List.of(new SequenceStep(1, g.inputIds(), 0, SequenceStep.Logits.LAST,
                        true)), mesh.model().newCache(256)).getFirst();
                // Same routes, the same next token and the same bits: prefetch hints never change what is
                // computed, and the kernels give the same bits in every JIT tier (JitTierBitsTest).
                assertThat(on.routes()).isDeepEqualTo(without.routes());
                assertThat(argmax(on.logits())).isEqualTo(argmax(without.logits()));
                assertThat(on.logits()).containsExactly(without.logits());
            }
        }
    }

    private static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }

    @Test
    void failingPrefetch_neverFailsAStep_isCounted_andNeverOpensTheBreaker() {
        try (Mesh mesh = mesh(TestModels.MIXTRAL, 2)) {
            mesh.fakes().forEach(f -> f.prefetchFails.set(true));
            GoldenCase g = GoldenCase.load(TestModels.MIXTRAL).getFirst();
            for (int i = 0; i < 5; i++) {
                goldenStep(mesh, g);
            }
            await().until(() -> mesh.prefetch().requestsFailed() == mesh.prefetch().requestsSent());
            assertThat(mesh.prefetch().requestsFailed()).isGreaterThanOrEqualTo(5);
            assertThat(mesh.dispatch().instances()).allSatisfy(i -> {
                assertThat(i.state()).isEqualTo(CircuitBreaker.State.CLOSED);
                assertThat(i.available()).isTrue();
            });
        }
    }

    /**
     * A step whose remote attention fails at layer 2 for one of its sequences runs again without it (the scheduler's
     * FailedRemotes): each layer of the step is hinted to an instance once and scored once, layers 1 and 2 hinted and
     * layer 1 scored by the failed pass (its 7 rows: 3 of the local prompt, 4 past the other's remote prefix), layer 3
     * hinted and layers 2 and 3 scored by the re-run (3 rows). Before, the re-run hinted and scored every layer again.
     */
    @Test
    void stepRunAgainWithoutTheSequenceWhoseRemoteAttentionFailed_hintsAndScoresEachLayerOnce() {
        int failLayer = 2;
        int remotePrefix = 16;
        try (Mesh mesh = mesh(TestModels.MIXTRAL, 2)) {
            var c = mesh.model().config();
            RemotePrefixes cache = new RemotePrefixes(mesh.model().newCache(256));
            RemoteAttention remote = new RemoteAttention() {
                @Override
                public void start(RemoteAttentionBatch batch) {
                }

                /** Zero partials below the failing layer: the sequence ends there, its tokens do not matter. */
                @Override
                public void await(RemoteAttentionBatch batch) {
                    if (batch.layer() == failLayer) {
                        throw new RemoteAttentionException("injected: Attend failed", null, Set.of(batch.seqId(0)));
                    }
                }
            };
            Engine engine = new Engine(c, mesh.model().denseWeights(), mesh.dispatch(), mesh.prefetch(),
                    mesh.prefetch(), remote);
            StepScheduler scheduler = new StepScheduler(engine, cache, 64, 4, (seqId, tokens, tenant) -> {
                if (tokens.length > remotePrefix) {
                    cache.prefixes.put(seqId, remotePrefix);
                    return remotePrefix;
                }
                return 0;
            }, PreemptionPolicy.RECOMPUTE);
            int[] longPrompt = new int[remotePrefix + 4];
            for (int i = 0; i < longPrompt.length; i++) {
                longPrompt[i] = 3 + 7 * i;
            }
            CompletableFuture<Object> local = new CompletableFuture<>();
            CompletableFuture<Object> failing = new CompletableFuture<>();
            scheduler.submit(new GenerationRequest(new int[] {1, 2, 3}, SamplingParams.greedy(1), false), ended(local));
            scheduler.submit(new GenerationRequest(longPrompt, SamplingParams.greedy(1), false), ended(failing));
            while (!(local.isDone() && failing.isDone()) && scheduler.step()) {
                // one engine step per iteration
            }
            assertThat(failing).isCompletedWithValueMatching(e -> e instanceof RemoteAttentionException);
            assertThat(local).isCompletedWithValueMatching(r -> r instanceof GenerationResult);

            await().until(() -> mesh.prefetch().requestsSent() == mesh.fakes().get(0).prefetches.size()
                    + mesh.fakes().get(1).prefetches.size());
            Set<Integer> hintedLayers = new HashSet<>();
            for (FakeExpertInstance f : mesh.fakes()) {
                List<Integer> layers = f.prefetches.stream().map(p -> p.getExperts(0).getLayer()).toList();
                assertThat(layers).as("one Prefetch per layer and instance").doesNotHaveDuplicates();
                hintedLayers.addAll(layers);
            }
            assertThat(hintedLayers).containsExactlyInAnyOrder(1, 2, 3);
            assertThat(mesh.prefetch().trueExperts()).isEqualTo((long) c.topK() * (7 + 3 + 3));
        }
    }

    private static SequenceListener ended(CompletableFuture<Object> done) {
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

    /** Holds a sequence's positions from its remote prefix on (the kvcache-service keeps the rest). */
    private static final class RemotePrefixes extends ForwardingKvCache {
        final Map<Long, Integer> prefixes = new HashMap<>();

        RemotePrefixes(PagedKvCache pool) {
            super(pool);
        }

        @Override
        public boolean ensureCapacity(long seqId, int length) {
            return pool().ensureCapacity(seqId, Math.max(0, length - remotePrefix(seqId)));
        }

        @Override
        public int remotePrefix(long seqId) {
            return prefixes.getOrDefault(seqId, 0);
        }
    }

    @Test
    void instanceThatTakesNoHints_inProcess_stepsStillGolden_failuresCounted() {
        var m = MeshExpertDispatchTest.mesh(TestModels.MIXTRAL, 2, 1, Duration.ofSeconds(30), Duration.ofSeconds(10));
        var c = m.model().config();
        LookaheadPrefetch prefetch = new LookaheadPrefetch(m.dispatch(), c.topK(), c.topK(), -1, 64);
        GoldenCase g = GoldenCase.load(TestModels.MIXTRAL).getFirst();
        StepOutput out = m.model().engine(m.dispatch(), prefetch, prefetch).step(List.of(new SequenceStep(1,
                g.inputIds(), 0, SequenceStep.Logits.LAST, true)), m.model().newCache(256)).getFirst();
        assertThat(out.logits()).containsExactly(g.lastLogits(), within(1e-4f));
        assertThat(prefetch.requestsFailed()).isEqualTo(prefetch.requestsSent()).isPositive();
    }
}
