package io.moemesh.gateway.dispatch;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.tuple;
import static org.assertj.core.api.Assertions.within;

import io.moemesh.model.MoeModel;
import io.moemesh.model.engine.Engine;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepOutput;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementTable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BiFunction;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class MeshExpertDispatchTest {

    record Mesh(MeshExpertDispatch dispatch, Map<String, InProcessInstance> instances, MoeModel model,
                PlacementTable table) {
        ResilientInstance resilient(String id) {
            return dispatch.instances().stream().filter(i -> i.id().equals(id)).findFirst().orElseThrow();
        }
    }

    private static Mesh mesh(String modelName, int n, int replicas) {
        return mesh(modelName, n, replicas, ReplicaPicker.PREFER_VISITED);
    }

    private static Mesh mesh(String modelName, int n, int replicas, ReplicaPicker picker) {
        return mesh(modelName, n, replicas, Duration.ofSeconds(30), Duration.ofSeconds(10), picker);
    }

    static Mesh mesh(String modelName, int n, int replicas, Duration openWait, Duration stepDeadline) {
        return mesh(modelName, n, replicas, openWait, stepDeadline, ReplicaPicker.PREFER_VISITED);
    }

    /** n in-process instances, every expert on {@code replicas} of them, breakers failing at 50 %. */
    static Mesh mesh(String modelName, int n, int replicas, Duration openWait, Duration stepDeadline,
                     ReplicaPicker picker) {
        MoeModel model = MoeModel.open(TestModels.dir(modelName));
        Map<String, InProcessInstance> instances = new HashMap<>();
        MeshExpertDispatch d = new MeshExpertDispatch(model.config().hiddenSize(), in -> {
            InProcessInstance i = new InProcessInstance(in.getId(), model);
            instances.put(in.getId(), i);
            return new ResilientInstance(i, 8, 50, openWait);
        }, stepDeadline, picker, new DispatchTraces(model.config().numLayers(), 8));
        List<Instance> ins = IntStream.range(0, n).mapToObj(i -> Instance.newBuilder().setId("expert-" + i)
                .setEndpoint("127.0.0.1:" + (9100 + i)).build()).toList();
        var c = model.config();
        PlacementTable table = PlacementTable.of(EvenPlacement.build(1, ins, c.numLayers(), c.numExperts(),
                c.hasSharedExpert(), replicas), c.numLayers(), c.dispatchableExperts());
        d.usePlacement(table);
        return new Mesh(d, instances, model, table);
    }

    static Stream<Arguments> meshes() {
        return Stream.of(TestModels.MIXTRAL, TestModels.MIXTRAL_BF16, TestModels.QWEN2_MOE).flatMap(m -> Stream.of(
                Arguments.of(m, 1, 1, "prefer-visited"), Arguments.of(m, 2, 1, "prefer-visited"),
                Arguments.of(m, 3, 1, "prefer-visited"), Arguments.of(m, 3, 2, "prefer-visited"),
                Arguments.of(m, 3, 2, "least-loaded"), Arguments.of(m, 2, 2, "balanced-experts"),
                Arguments.of(m, 3, 2, "balanced-experts")));
    }

    @ParameterizedTest(name = "{0} on {1} instances x{2}, {3}")
    @MethodSource("meshes")
    void dispatch_sameLogitsAndRoutesAsReference_anyPlacementAndPicker(String modelName, int n, int replicas,
                                                                       String picker) {
        Mesh mesh = mesh(modelName, n, replicas, ReplicaPicker.named(picker, "picker"));
        Engine engine = mesh.model().engine(mesh.dispatch());
        for (GoldenCase g : GoldenCase.load(modelName)) {
            StepOutput out = engine.step(List.of(new SequenceStep(1, g.inputIds(), 0, SequenceStep.Logits.LAST, true)),
                    mesh.model().newCache(128)).getFirst();
            assertThat(out.logits()).as(g.prompt()).containsExactly(g.lastLogits(), within(1e-4f));
            for (int l = 0; l < g.routerTopk().length; l++) {
                for (int p = 0; p < g.inputIds().length; p++) {
                    assertThat(out.routes()[l][p]).containsExactly(g.routerTopk()[l][p]);
                }
            }
            assertDispatchFollowsRoutes(mesh, g, mesh.dispatch().traces().take(1));
        }
    }

    /**
     * Each layer's record lists instances of the placement, ascending, each applying only experts it holds to at
     * most the prompt's rows, together exactly the routed experts (plus the shared one); with one replica per
     * expert, the rows and experts are exactly what the routes and the placement imply.
     */
    private static void assertDispatchFollowsRoutes(Mesh mesh, GoldenCase g, PromptDispatch d) {
        var c = mesh.model().config();
        PlacementTable table = mesh.table();
        assertThat(d.epoch()).isEqualTo(table.epoch());
        assertThat(d.layers()).extracting(LayerDispatchRecord::layer)
                .containsExactlyElementsOf(IntStream.range(0, c.numLayers()).boxed().toList());
        for (LayerDispatchRecord rec : d.layers()) {
            int l = rec.layer();
            assertThat(rec.instances()).extracting(LayerDispatchRecord.InstanceShare::instanceId).isSorted();
            TreeSet<Integer> applied = new TreeSet<>();
            for (LayerDispatchRecord.InstanceShare s : rec.instances()) {
                int idx = table.instanceIndex(s.instanceId());
                assertThat(s.tokens()).isBetween(1, g.inputIds().length);
                for (int e : s.experts()) {
                    assertThat(table.holders()[l][e]).contains(idx);
                }
                applied.addAll(s.experts());
            }
            TreeSet<Integer> routed = new TreeSet<>();
            for (int[] pos : g.routerTopk()[l]) {
                for (int e : pos) {
                    routed.add(e);
                }
            }
            if (c.hasSharedExpert()) {
                routed.add(c.numExperts());
            }
            assertThat(applied).as("layer %d", l).isEqualTo(routed);
            if (IntStream.range(0, table.holders()[l].length).allMatch(e -> table.holders()[l][e].length == 1)) {
                Map<String, Integer> rows = new TreeMap<>();
                for (int[] pos : g.routerTopk()[l]) {
                    Set<String> visits = new HashSet<>();
                    for (int e : pos) {
                        visits.add(table.instances().get(table.holders()[l][e][0]).getId());
                    }
                    if (c.hasSharedExpert()) {
                        visits.add(table.instances().get(table.holders()[l][c.numExperts()][0]).getId());
                    }
                    visits.forEach(id -> rows.merge(id, 1, Integer::sum));
                }
                assertThat(rec.instances()).extracting(LayerDispatchRecord.InstanceShare::instanceId,
                        LayerDispatchRecord.InstanceShare::tokens).as("layer %d", l)
                        .containsExactlyElementsOf(rows.entrySet().stream()
                                .map(en -> tuple(en.getKey(), en.getValue())).toList());
            }
        }
    }

    /**
     * Predicted routes of 6 rows × 2 (experts 0..3; pairs per expert 5, 3, 2, 2) on 2 instances holding every expert:
     * where each picker puts them, as {@link MeshExpertDispatch#prefetchTargets} reports it (the same assignment
     * as a step's).
     */
    static Stream<Arguments> assignments() {
        int[] routes = {0, 1, 0, 1, 0, 2, 0, 3, 0, 1, 2, 3};
        return Stream.of(
                // Largest first: 0 (5) → A; 1 (3) → B; 2 (2) → B (3 < 5); 3 (2) → B on a 5-5 tie (layer 0 lists
                // expert 3's holders as B, A: EvenPlacement). Loads 5 and 7; each expert on one instance.
                Arguments.of("balanced-experts", routes, Map.of("expert-0", List.of(0), "expert-1", List.of(1, 2, 3)),
                        "whole experts, largest first, each to the less loaded"),
                // A row's second pair follows its first, and rows alternate: experts 0, 1 and 2 on both instances.
                Arguments.of("prefer-visited", routes, Map.of("expert-0", List.of(0, 1, 2), "expert-1",
                        List.of(0, 1, 2, 3)), "a row's pairs together"));
    }

    @ParameterizedTest(name = "{0}: {3}")
    @MethodSource("assignments")
    void prefetchTargets_followThePickersRule_everyExpertOnBothInstances(String picker, int[] routes,
                                                                         Map<String, List<Integer>> expected,
                                                                         String rule) {
        Mesh mesh = mesh(TestModels.MIXTRAL, 2, 2, ReplicaPicker.named(picker, "picker"));
        Map<String, List<Integer>> actual = new HashMap<>();
        for (MeshExpertDispatch.PrefetchTarget t : mesh.dispatch().prefetchTargets(0, 6, routes, 2)) {
            actual.put(t.instance().id(), IntStream.of(t.experts()).sorted().boxed().toList());
        }
        Map<String, List<Integer>> sorted = new HashMap<>();
        expected.forEach((k, v) -> sorted.put(k, v.stream().sorted().toList()));
        assertThat(actual).isEqualTo(sorted);
    }

    @Test
    void balancedExperts_eachExpertOnOneInstancePerLayer_loadsApartByAtMostTheLargestExpert() {
        Mesh mesh = mesh(TestModels.MIXTRAL, 2, 2, ReplicaPicker.BALANCED_EXPERTS);
        GoldenCase g = GoldenCase.load(TestModels.MIXTRAL).getFirst();
        StepOutput out = mesh.model().engine(mesh.dispatch()).step(List.of(new SequenceStep(1, g.inputIds(), 0,
                SequenceStep.Logits.LAST, true)), mesh.model().newCache(128)).getFirst();
        assertThat(out.logits()).containsExactly(g.lastLogits(), within(1e-4f));
        for (LayerDispatchRecord rec : mesh.dispatch().traces().take(1).layers()) {
            int[] pairs = new int[mesh.model().config().numExperts()];
            for (int[] pos : g.routerTopk()[rec.layer()]) {
                for (int e : pos) {
                    pairs[e]++;
                }
            }
            int[] load = new int[2];
            Set<Integer> seen = new HashSet<>();
            for (LayerDispatchRecord.InstanceShare s : rec.instances()) {
                for (int e : s.experts()) {
                    assertThat(seen.add(e)).as("layer %d expert %d on one instance", rec.layer(), e).isTrue();
                    load[mesh.table().instanceIndex(s.instanceId())] += pairs[e];
                }
            }
            assertThat(Math.abs(load[0] - load[1])).as("layer %d loads %s", rec.layer(), Arrays.toString(load))
                    .isLessThanOrEqualTo(IntStream.of(pairs).max().orElseThrow());
        }
    }

    /**
     * Epoch 2 moves expert-1 to a {@code unix:///} endpoint this host cannot connect (as when epoll is unavailable)
     * and adds expert-2: the dispatch keeps serving epoch 1 with its clients open, closes the one it opened for
     * epoch 2, does not try epoch 2 again at every step boundary but after a backoff (a transient failure passes),
     * and takes the next epoch that connects at once.
     */
    @Test
    void placementThatCannotConnect_keepsTheServingPlacementAndItsClients_triedAgainAfterABackoffOrForANewEpoch() {
        MoeModel model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL));
        var c = model.config();
        Map<String, List<InProcessInstance>> made = new HashMap<>();
        AtomicInteger connects = new AtomicInteger();
        AtomicLong clock = new AtomicLong();
        MeshExpertDispatch d = new MeshExpertDispatch(c.hiddenSize(), in -> {
            connects.incrementAndGet();
            if (in.getEndpoint().startsWith("unix:")) {
                throw new IllegalStateException(in.getEndpoint() + " needs epoll, which is not available here");
            }
            InProcessInstance i = new InProcessInstance(in.getId(), model);
            made.computeIfAbsent(in.getId(), k -> new ArrayList<>()).add(i);
            return new ResilientInstance(i, 8, 50, Duration.ofSeconds(30));
        }, Duration.ofSeconds(10), ReplicaPicker.PREFER_VISITED, new DispatchTraces(c.numLayers(), 8),
                Integer.MAX_VALUE, clock::get);
        BiFunction<Long, List<String>, PlacementTable> placement = (epoch, endpoints) -> {
            List<Instance> ins = IntStream.range(0, endpoints.size()).mapToObj(i -> Instance.newBuilder()
                    .setId(endpoints.get(i).split("=")[0]).setEndpoint(endpoints.get(i).split("=")[1]).build()).toList();
            return PlacementTable.of(EvenPlacement.build(epoch, ins, c.numLayers(), c.numExperts(), c.hasSharedExpert(),
                    1), c.numLayers(), c.dispatchableExperts());
        };
        d.usePlacement(placement.apply(1L, List.of("expert-0=127.0.0.1:9100", "expert-1=127.0.0.1:9101")));
        Engine engine = model.engine(d);
        GoldenCase g = GoldenCase.load(TestModels.MIXTRAL).getFirst();

        PlacementTable bad = placement.apply(2L, List.of("expert-0=127.0.0.1:9100", "expert-2=127.0.0.1:9102",
                "expert-1=unix:///run/moemesh/expert-1.sock"));
        d.usePlacement(bad);

        assertThat(d.epoch()).isEqualTo(1);
        assertThat(d.instances()).extracting(ResilientInstance::id).containsExactly("expert-0", "expert-1");
        assertThat(made.get("expert-0")).singleElement().satisfies(i -> assertThat(i.closed).isFalse());
        assertThat(made.get("expert-1")).singleElement().satisfies(i -> assertThat(i.closed).isFalse());
        assertThat(made.get("expert-2")).as("opened for epoch 2 only").singleElement()
                .satisfies(i -> assertThat(i.closed).isTrue());
        StepOutput out = engine.step(List.of(new SequenceStep(1, g.inputIds(), 0, SequenceStep.Logits.LAST, false)),
                model.newCache(128)).getFirst();
        assertThat(out.logits()).containsExactly(g.lastLogits(), within(1e-4f));
        assertThat(made.get("expert-1").getFirst().calls.get()).as("epoch 1's clients serve").isPositive();
        int tried = connects.get();
        d.usePlacement(bad);
        assertThat(connects.get()).as("epoch 2 is not tried at every step boundary").isEqualTo(tried);
        clock.addAndGet(RefusedPlacement.FIRST_RETRY.toNanos());
        d.usePlacement(bad);
        assertThat(connects.get()).as("tried again once the first backoff passed").isGreaterThan(tried);
        assertThat(d.epoch()).isEqualTo(1);
        assertThat(d.refusedPlacement()).hasValueSatisfying(why -> assertThat(why).startsWith("placement epoch 2 "));
        tried = connects.get();
        d.usePlacement(bad);
        assertThat(connects.get()).as("the backoff grew: not due yet").isEqualTo(tried);

        d.usePlacement(placement.apply(3L, List.of("expert-0=127.0.0.1:9100", "expert-1=127.0.0.1:9101",
                "expert-2=127.0.0.1:9102")));
        assertThat(d.epoch()).isEqualTo(3);
        out = engine.step(List.of(new SequenceStep(2, g.inputIds(), 0, SequenceStep.Logits.LAST, false)),
                model.newCache(128)).getFirst();
        assertThat(out.logits()).containsExactly(g.lastLogits(), within(1e-4f));
        assertThat(made.get("expert-2").getLast().calls.get()).isPositive();
        d.close();
        model.close();
    }

    /**
     * Opening a client that fails for a moment (descriptors short) refuses the placement only until its retry: the
     * same placement, offered again at every step boundary, is applied once the backoff has passed and the failure
     * with it, and nothing is refused any more.
     */
    @Test
    void placementWhoseConnectFailsForAMoment_isAppliedAtItsRetry_andNothingIsRefusedThen() {
        MoeModel model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL));
        var c = model.config();
        AtomicBoolean failing = new AtomicBoolean(true);
        AtomicLong clock = new AtomicLong();
        MeshExpertDispatch d = new MeshExpertDispatch(c.hiddenSize(), in -> {
            if (failing.get()) {
                throw new IllegalStateException("Too many open files");
            }
            return new ResilientInstance(new InProcessInstance(in.getId(), model), 8, 50, Duration.ofSeconds(30));
        }, Duration.ofSeconds(10), ReplicaPicker.PREFER_VISITED, new DispatchTraces(c.numLayers(), 8),
                Integer.MAX_VALUE, clock::get);
        List<Instance> ins = IntStream.range(0, 2).mapToObj(i -> Instance.newBuilder().setId("expert-" + i)
                .setEndpoint("127.0.0.1:" + (9100 + i)).build()).toList();
        PlacementTable table = PlacementTable.of(EvenPlacement.build(1, ins, c.numLayers(), c.numExperts(),
                c.hasSharedExpert(), 1), c.numLayers(), c.dispatchableExperts());

        d.usePlacement(table);
        assertThat(d.hasPlacement()).isFalse();
        assertThat(d.refusedPlacement()).hasValue("placement epoch 1 could not be applied: "
                + "java.lang.IllegalStateException: Too many open files");
        failing.set(false);
        d.usePlacement(table);
        assertThat(d.hasPlacement()).as("the retry is not due yet").isFalse();

        clock.addAndGet(RefusedPlacement.MAX_RETRY.toNanos());
        d.usePlacement(table);
        assertThat(d.epoch()).isEqualTo(1);
        assertThat(d.instances()).extracting(ResilientInstance::id).containsExactly("expert-0", "expert-1");
        assertThat(d.refusedPlacement()).isEmpty();
        d.close();
        model.close();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("pickers")
    void replicaDown_pairsRetriedOnTheOtherReplica_sameLogits(String picker) {
        Mesh mesh = mesh(TestModels.MIXTRAL, 3, 2, ReplicaPicker.named(picker, "picker"));
        mesh.instances().get("expert-1").down.set(true);
        GoldenCase g = GoldenCase.load(TestModels.MIXTRAL).getFirst();
        StepOutput out = mesh.model().engine(mesh.dispatch()).step(List.of(new SequenceStep(1, g.inputIds(), 0,
                SequenceStep.Logits.LAST, true)), mesh.model().newCache(128)).getFirst();
        assertThat(out.logits()).containsExactly(g.lastLogits(), within(1e-4f));
        PromptDispatch d = mesh.dispatch().traces().take(1);
        assertThat(d.layers()).hasSize(mesh.model().config().numLayers()).allSatisfy(r ->
                assertThat(r.instances()).noneMatch(s -> s.instanceId().equals("expert-1")));
    }

    static Stream<String> pickers() {
        return ReplicaPicker.names().stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("pickers")
    void allReplicasOfAnExpertDown_failsWithUnavailableNamingTheExpert(String picker) {
        Mesh mesh = mesh(TestModels.MIXTRAL, 2, 1, ReplicaPicker.named(picker, "picker"));
        mesh.instances().get("expert-0").down.set(true);
        GoldenCase g = GoldenCase.load(TestModels.MIXTRAL).getFirst();
        Engine engine = mesh.model().engine(mesh.dispatch());
        assertThatThrownBy(() -> engine.step(List.of(new SequenceStep(1, g.inputIds(), 0, SequenceStep.Logits.LAST,
                false)), mesh.model().newCache(128)))
                .isInstanceOf(ExpertUnavailableException.class)
                .hasMessageMatching("layer \\d+ expert \\d+ has no healthy replica \\(placed on expert-0, epoch 1\\)");
    }
}
