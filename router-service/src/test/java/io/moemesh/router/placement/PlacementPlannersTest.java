package io.moemesh.router.placement;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.proto.router.v1.Instance;
import io.moemesh.router.trace.RouteTrace;
import io.moemesh.service.placement.EvenPlacement;
import java.util.Arrays;
import java.util.List;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class PlacementPlannersTest {

    @Property(tries = 60)
    void everyPlanner_placesEveryExpertOfEveryLayer_onDistinctInstances_withinTheSlots(
            @ForAll @IntRange(min = 1, max = 6) int instances, @ForAll @IntRange(min = 0, max = 3) int extraSlots,
            @ForAll @IntRange(min = 2, max = 12) int experts, @ForAll @IntRange(min = 1, max = 4) int layers,
            @ForAll long seed) {
        int topK = Math.min(2, experts);
        RouteTrace trace = SyntheticTraces.clustered(40, layers, experts, topK, 1, 0.3, seed);
        RouteStats stats = RouteStats.of(trace);
        int slots = (experts + instances - 1) / instances + extraSlots;
        for (String name : PlacementPlanners.names()) {
            Placement p = PlacementPlanners.named(name).plan(stats, PlacementBudget.slots(instances, slots),
                    PlacementPlanners.localIds(instances));
            assertThat(p.instances()).isEqualTo(instances);
            assertThat(p.layers()).isEqualTo(layers);
            assertThat(p.maxSlotsUsed()).as(name).isLessThanOrEqualTo(slots);
            for (int[][] layer : p.holders()) {
                assertThat(layer.length).isEqualTo(experts);
                for (int[] h : layer) {
                    assertThat(h).isNotEmpty().doesNotHaveDuplicates();
                    assertThat(Arrays.stream(h).allMatch(i -> i >= 0 && i < instances)).isTrue();
                }
            }
        }
    }

    @ParameterizedTest
    @CsvSource({"1, 8, 2, 0", "2, 8, 4, 0", "3, 60, 2, 1", "4, 5, 3, 2"})
    void roundRobin_dealsExactlyAsTheLocalMeshPublishes(int instances, int experts, int layers, int firstLayer) {
        RouteTrace trace = SyntheticTraces.clustered(20, layers, experts, 2, 1, 0.3, 3);
        RouteStats stats = RouteStats.of(new RouteTrace("shifted", firstLayer, layers, experts, 2, trace.tokens()));
        List<String> ids = PlacementPlanners.localIds(instances);
        int slots = (experts + instances - 1) / instances;
        Placement p = new RoundRobinPlanner().plan(stats, PlacementBudget.slots(instances, slots), ids);
        io.moemesh.proto.router.v1.Placement even = EvenPlacement.build(1,
                ids.stream().map(id -> Instance.newBuilder().setId(id).build()).toList(),
                firstLayer + layers, experts, false, 1);
        for (int l = 0; l < layers; l++) {
            for (int e = 0; e < experts; e++) {
                assertThat(ids.get(p.holders()[l][e][0])).as("layer %d expert %d", firstLayer + l, e)
                        .isEqualTo(even.getLayers(firstLayer + l).getExperts(e).getInstanceIds(0));
            }
        }
    }

    @Test
    void affinity_isDeterministic_forTheSameStats() {
        RouteStats stats = RouteStats.of(SyntheticTraces.clustered(500, 4, 16, 2, 4, 0.1, 7));
        PlacementBudget budget = PlacementBudget.slots(4, 5);
        Placement a = new AffinityPlanner().plan(stats, budget, PlacementPlanners.localIds(4));
        Placement b = new AffinityPlanner().plan(stats, budget, PlacementPlanners.localIds(4));
        assertThat(a.holders()).isDeepEqualTo(b.holders());
    }

    @Test
    void affinity_keepsGroupsTogether_balancesLoad_andBeatsRoundRobinOnFanOutAndCrossPairs() {
        // 4 groups of 8 used together, skewed popularity, held-out test trace from the same distribution
        RouteTrace all = SyntheticTraces.clustered(6000, 4, 32, 4, 4, 0.05, 1);
        RouteStats train = RouteStats.of(new RouteTrace("train", 0, 4, 32, 4, all.tokens().subList(0, 4000)));
        RouteTrace test = new RouteTrace("test", 0, 4, 32, 4, all.tokens().subList(4000, 6000));
        PlacementBudget budget = PlacementBudget.slots(4, 10);
        List<String> ids = PlacementPlanners.localIds(4);
        PlacementEval rr = PlacementEval.score(new RoundRobinPlanner().plan(train, budget, ids), test);
        PlacementEval aff = PlacementEval.score(new AffinityPlanner().plan(train, budget, ids), test);
        assertThat(aff.fanOut()).isLessThan(rr.fanOut() * 0.8);
        assertThat(aff.crossPairs()).isLessThan(rr.crossPairs() * 0.8);
        assertThat(aff.loadMaxOverMean()).isLessThanOrEqualTo(1.10);
        assertThat(aff.slotsUsed()).isLessThanOrEqualTo(10);
    }

    @Test
    void affinity_fillsSpareSlots_hottestCopiesFirst_upToOneCopyPerInstance() {
        // expert 0 gets every token; experts 1..7 share the rest
        List<io.moemesh.router.trace.TokenRoute> tokens = new java.util.ArrayList<>();
        for (int t = 0; t < 700; t++) {
            tokens.add(RouteStatsTest.token(Integer.toString(t), new int[] {0, 1 + t % 7}));
        }
        RouteStats stats = RouteStats.of(new RouteTrace("hot", 0, 1, 8, 2, tokens));
        Placement p = new AffinityPlanner().plan(stats, PlacementBudget.slots(4, 3), PlacementPlanners.localIds(4));
        // 12 slots, 8 experts: expert 0 (700 pairs) gets a copy on each of the 4 instances (175 each), then one
        // cold expert (100 pairs) gets the last spare slot
        assertThat(p.holders()[0][0]).containsExactly(0, 1, 2, 3);
        assertThat(p.extraReplicas()).isEqualTo(4);
        assertThat(p.maxSlotsUsed()).isEqualTo(3);
    }

    @Test
    void replay_neverScoresWorseOnItsTrainingRows_thanTheStatisticsOnlyPacking_itStartsFrom() {
        // one layer: the replay starts from exactly the statistics-only packing of that layer
        RouteTrace trace = SyntheticTraces.clustered(600, 1, 24, 3, 3, 0.2, 9);
        RouteStats stats = RouteStats.of(trace);
        PlacementBudget budget = PlacementBudget.slots(4, 8);
        List<String> ids = PlacementPlanners.localIds(4);
        PlacementEval statsOnly = PlacementEval.score(PlacementPlanners.named("affinity-stats").plan(stats, budget, ids),
                trace);
        PlacementEval replayed = PlacementEval.score(PlacementPlanners.named("affinity").plan(stats, budget, ids), trace);
        assertThat(objective(replayed)).isLessThanOrEqualTo(objective(statsOnly) + 1e-9);
    }

    private static double objective(PlacementEval e) {
        return e.fanOut() + ReplayRefinement.OVERLOAD_PENALTY * Math.max(0, e.loadMaxOverMean()
                - ReplayRefinement.LOAD_TARGET);
    }

    @Test
    void replay_isSkipped_beyondItsWorkBudget_andWithoutRows() {
        assertThat(ReplayRefinement.affordable(4, 3, 8, new int[400][2])).isTrue();
        assertThat(ReplayRefinement.affordable(64, 5, 256, new int[4096][8])).isFalse();
        assertThat(ReplayRefinement.affordable(4, 3, 8, new int[0][])).isFalse();
    }

    @Test
    void named_refusesAnUnknownPlanner_listingTheNames() {
        assertThatThrownBy(() -> PlacementPlanners.named("greedy")).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("--planner must be one of affinity, affinity-stats, round-robin, got \"greedy\"");
        assertThat(PlacementPlanners.named(PlacementPlanners.DEFAULT)).isInstanceOf(AffinityPlanner.class);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "0 instances | 0 | 4 | 0 | 0 | --instances must be at least 1, got 0",
            "0 slots | 2 | 0 | 0 | 0 | --slots-per-instance must be at least 1, got 0",
            "slots too few | 2 | 3 | 0 | 0 | --slots-per-instance 3 × --instances 2 = 6 slots per layer cannot hold the 8 "
                    + "experts of a layer once (needs at least 4 slots per instance)",
            "memory too small | 2 | 8 | 300 | 100 | --memory-budget 300 bytes holds 3 experts of 100 bytes per instance, "
                    + "1 per layer over 2 layers: 2 instances cannot hold the 8 experts of a layer once (needs at least "
                    + "800 bytes)",
            "negative memory | 2 | 8 | -1 | 100 | --memory-budget must be 0 or more bytes, got -1",
            "memory without expert bytes | 2 | 8 | 1000 | 0 | --expert-bytes must be at least 1 with --memory-budget, got 0"})
    void budgets_thatCannotHoldEveryExpertOnce_areRefused_namingTheOption(String name, int instances, int slots,
                                                                         long memory, long expertBytes, String message) {
        RouteStats stats = RouteStats.of(SyntheticTraces.clustered(10, 2, 8, 2, 1, 0, 3));
        assertThatThrownBy(() -> {
            PlacementBudget budget = new PlacementBudget(instances, slots, memory, expertBytes);
            new AffinityPlanner().plan(stats, budget, PlacementPlanners.localIds(instances));
        }).isInstanceOf(IllegalArgumentException.class).hasMessage(message);
    }

    @ParameterizedTest
    @ValueSource(strings = {"affinity", "affinity-stats", "round-robin"})
    void aMemoryBudget_limitsTheExpertsPerInstancePerLayer(String planner) {
        RouteStats stats = RouteStats.of(SyntheticTraces.clustered(200, 2, 8, 2, 2, 0.1, 5));
        // 2 layers × 3 experts × 100 bytes: 3 per layer although 8 slots are allowed
        Placement p = PlacementPlanners.named(planner).plan(stats, new PlacementBudget(4, 8, 600, 100),
                PlacementPlanners.localIds(4));
        assertThat(p.maxSlotsUsed()).isLessThanOrEqualTo(3);
    }

    /** Two copies of each of 8 experts on 4 instances of 4 slots (e on e mod 4 and e + 1 mod 4): no slot free. */
    private static int[] twoCopiesEach() {
        int[] slot = new int[16];
        int[] used = new int[4];
        for (int e = 0; e < 8; e++) {
            for (int r = 0; r < 2; r++) {
                int i = (e + r) % 4;
                slot[i * 4 + used[i]++] = e;
            }
        }
        return slot;
    }

    private static int[] copies(int[] slot) {
        int[] c = new int[8];
        for (int x : slot) {
            if (x >= 0) {
                c[x]++;
            }
        }
        return c;
    }

    @Test
    void replay_neverTakesAnExpertBelowItsReplicas_evenWhenAllTheTrafficIsOnTwoExperts() {
        int[][] rows = new int[400][];
        Arrays.fill(rows, new int[] {0, 1});
        int[] kept = twoCopiesEach();
        ReplayRefinement.refine(4, 4, 8, rows, kept, FailureDomains.unknown(4), 2);
        assertThat(Arrays.stream(copies(kept)).min().orElseThrow()).isGreaterThanOrEqualTo(2);
        // With one copy as the floor, the same replay does give idle experts' copies to the busy ones.
        int[] free = twoCopiesEach();
        ReplayRefinement.refine(4, 4, 8, rows, free, FailureDomains.unknown(4), 1);
        assertThat(copies(free)).contains(1);
    }

    @ParameterizedTest
    @ValueSource(strings = {"affinity", "affinity-stats", "round-robin"})
    void aBudgetThatCannotHoldTheReplicasOfEveryExpert_isRefused_namingTheReplicas(String planner) {
        RouteStats stats = RouteStats.of(SyntheticTraces.clustered(200, 2, 8, 2, 2, 0.1, 5));
        // 12 slots per layer: every expert once fits, two copies of each (16) do not.
        assertThatThrownBy(() -> PlacementPlanners.named(planner).plan(stats,
                PlacementBudget.slots(4, 3).withCopies(2, 0), PlacementPlanners.localIds(4)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("--slots-per-instance: 3 experts per instance per layer × --instances 4 = 12 slots per "
                        + "layer cannot hold 2 copies of each of the 8 experts (--replicas 2; needs at least 4 per "
                        + "instance)");
    }

    @ParameterizedTest
    @ValueSource(strings = {"affinity", "affinity-stats", "round-robin"})
    void aLargerSharedExpert_takesItsBytesFromTheMemoryBudget_ofTheInstanceHoldingIt(String planner) {
        RouteStats stats = RouteStats.of(SyntheticTraces.clustered(400, 2, 8, 2, 2, 0.1, 5));
        // 1200 bytes over 2 layers: 600 a layer, 6 routed experts of 100 bytes; the shared expert's 300 bytes leave
        // 3 routed next to it, so 4 slots (1 + 3) per instance per layer.
        PlacementBudget budget = new PlacementBudget(4, 8, 1200, 100, 1, 1, 300);
        assertThat(budget.slotsPerLayer(2, 8)).isEqualTo(4);
        Placement p = PlacementPlanners.named(planner).plan(stats, budget, PlacementPlanners.localIds(4));
        EvenDeal deal = new EvenDeal(FailureDomains.unknown(4));
        for (int l = 0; l < 2; l++) {
            int[] routed = new int[4];
            for (int[] h : p.holders()[l]) {
                for (int i : h) {
                    routed[i]++;
                }
            }
            int sharedOn = deal.holder(8, l, 0);
            for (int i = 0; i < 4; i++) {
                long bytes = routed[i] * 100L + (i == sharedOn ? 300 : 0);
                assertThat(bytes).as("layer %d instance %d", l, i).isLessThanOrEqualTo(600);
            }
        }
    }
}
