package io.moemesh.router.placement;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.router.trace.RouteTrace;
import io.moemesh.router.trace.TokenRoute;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.IntStream;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * One node going must not take every copy of an expert: the planners put the copies of one expert on distinct failure
 * domains (nodes) whenever enough of them have room, and share one only when not, never failing because of it.
 * Instances are listed node by node ({@code a a b b}), the order in which a deal over consecutive instances would put
 * both copies on one node.
 */
class FailureDomainPlacementTest {

    /** {@code perNode} instances on each of {@code nodes} nodes, node by node. */
    static FailureDomains nodes(int nodes, int perNode) {
        List<String> names = new ArrayList<>();
        for (int d = 0; d < nodes; d++) {
            for (int i = 0; i < perNode; i++) {
                names.add("node-" + (char) ('a' + d));
            }
        }
        return FailureDomains.of(names);
    }

    static int domainsSpanned(int[] holders, FailureDomains domains) {
        return (int) Arrays.stream(holders).map(domains::of).distinct().count();
    }

    static void assertEveryExpertSpansAsManyDomainsAsItCan(Placement p, FailureDomains domains, String what) {
        for (int l = 0; l < p.layers(); l++) {
            for (int e = 0; e < p.experts(l); e++) {
                int[] h = p.holders()[l][e];
                assertThat(domainsSpanned(h, domains)).as("%s: layer %d expert %d on %s", what, l, e,
                        Arrays.toString(h)).isEqualTo(Math.min(h.length, domains.count()));
            }
        }
    }

    @Test
    void evenDeal_twoCopies_fourInstancesOnTwoNodes_putsEveryExpertOnBothNodes_andStaysEven() {
        FailureDomains domains = nodes(2, 2);
        int[][][] h = new EvenDeal(domains).holders(0, 3, 8, 2);
        int[] perInstance = new int[4];
        for (int[][] layer : h) {
            for (int[] copies : layer) {
                assertThat(domainsSpanned(copies, domains)).as(Arrays.toString(copies)).isEqualTo(2);
                for (int i : copies) {
                    perInstance[i]++;
                }
            }
        }
        assertThat(perInstance).containsOnly(3 * 8 * 2 / 4);
    }

    @Test
    void evenDeal_threeCopies_sixInstancesOnThreeNodes_putsEveryExpertOnEveryNode() {
        FailureDomains domains = nodes(3, 2);
        for (int[][] layer : new EvenDeal(domains).holders(2, 4, 12, 3)) {
            for (int[] copies : layer) {
                assertThat(domainsSpanned(copies, domains)).isEqualTo(3);
            }
        }
    }

    @Test
    void evenDeal_whenOneNodeHoldsMostInstances_sharesItOnlyWhereTheEvenSplitLeavesNoRoom_andNeverFails() {
        // 3 instances on node a, 1 on node b, 2 copies: node b's instance holds half of the copies' slots of a layer
        // (8 of 16) at most, so half of the experts can span both nodes, and exactly those do.
        FailureDomains domains = FailureDomains.of(List.of("a", "a", "a", "b"));
        int[][][] h = new EvenDeal(domains).holders(0, 1, 8, 2);
        long spanning = Arrays.stream(h[0]).filter(c -> domainsSpanned(c, domains) == 2).count();
        assertThat(spanning).isEqualTo(4);
        assertThat(Arrays.stream(h[0]).flatMapToInt(Arrays::stream).filter(i -> i == 3).count()).isEqualTo(4);
    }

    @Test
    void unknownDomains_dealInListOrder_asTheLocalMeshDoes() {
        assertThat(FailureDomains.of(List.of("", "", "")).interleaved()).containsExactly(0, 1, 2);
        assertThat(FailureDomains.unknown(3)).isEqualTo(FailureDomains.of(Arrays.asList(null, "", null)));
    }

    @Test
    void affinity_fourInstancesOnTwoNodes_putsTheCopiesOfEveryReplicatedExpertOnBothNodes() {
        // expert 0 is in every token, experts 1..7 share the rest: 12 slots for 8 experts leave 4 spare copies
        List<TokenRoute> tokens = new ArrayList<>();
        for (int t = 0; t < 700; t++) {
            tokens.add(RouteStatsTest.token(Integer.toString(t), new int[] {0, 1 + t % 7}));
        }
        RouteStats stats = RouteStats.of(new RouteTrace("hot", 0, 1, 8, 2, tokens));
        FailureDomains domains = nodes(2, 2);
        for (String planner : List.of(AffinityPlanner.NAME, AffinityPlanner.STATS_ONLY_NAME)) {
            Placement p = PlacementPlanners.named(planner).plan(stats, PlacementBudget.slots(4, 3),
                    PlacementPlanners.localIds(4), domains);
            assertThat(p.extraReplicas()).isEqualTo(4);
            assertEveryExpertSpansAsManyDomainsAsItCan(p, domains, planner);
        }
    }

    @Property(tries = 100)
    void everyPlanner_withRoomOnEveryNode_spreadsEveryExpertsCopiesOverAsManyNodesAsItHas(
            @ForAll @IntRange(min = 2, max = 4) int nodes, @ForAll @IntRange(min = 1, max = 4) int perNode,
            @ForAll @IntRange(min = 4, max = 16) int experts, @ForAll @IntRange(min = 0, max = 3) int extraSlots,
            @ForAll @IntRange(min = 1, max = 3) int layers, @ForAll long seed) {
        int instances = nodes * perNode;
        RouteStats stats = RouteStats.of(SyntheticTraces.clustered(300, layers, experts, 2, 2, 0.2, seed));
        int slots = (experts + instances - 1) / instances + extraSlots;
        FailureDomains domains = nodes(nodes, perNode);
        for (String name : PlacementPlanners.names()) {
            Placement p = PlacementPlanners.named(name).plan(stats, PlacementBudget.slots(instances, slots),
                    PlacementPlanners.localIds(instances), domains);
            assertThat(p.maxSlotsUsed()).as(name).isLessThanOrEqualTo(slots);
            assertEveryExpertSpansAsManyDomainsAsItCan(p, domains, name);
        }
    }

    @Test
    void affinity_withNodes_isDeterministic_andKeepsItsLoadBalanceAndFanOutLead() {
        RouteTrace all = SyntheticTraces.clustered(6000, 4, 32, 4, 4, 0.05, 1);
        RouteStats train = RouteStats.of(new RouteTrace("train", 0, 4, 32, 4, all.tokens().subList(0, 4000)));
        RouteTrace test = new RouteTrace("test", 0, 4, 32, 4, all.tokens().subList(4000, 6000));
        PlacementBudget budget = PlacementBudget.slots(4, 10);
        List<String> ids = PlacementPlanners.localIds(4);
        FailureDomains domains = nodes(2, 2);
        Placement a = new AffinityPlanner().plan(train, budget, ids, domains);
        assertThat(a.holders()).isDeepEqualTo(new AffinityPlanner().plan(train, budget, ids, domains).holders());
        assertEveryExpertSpansAsManyDomainsAsItCan(a, domains, "affinity");
        PlacementEval aff = PlacementEval.score(a, test);
        PlacementEval rr = PlacementEval.score(new RoundRobinPlanner().plan(train, budget, ids, domains), test);
        assertThat(aff.fanOut()).isLessThan(rr.fanOut() * 0.8);
        assertThat(aff.loadMaxOverMean()).isLessThanOrEqualTo(1.10);
    }

    @ParameterizedTest
    @ValueSource(strings = {"affinity", "affinity-stats", "round-robin"})
    void everyInstanceOnOneNode_stillPlans_sharingTheNode(String planner) {
        RouteStats stats = RouteStats.of(SyntheticTraces.clustered(200, 2, 8, 2, 2, 0.1, 5));
        FailureDomains oneNode = FailureDomains.of(IntStream.range(0, 4).mapToObj(i -> "node-a").toList());
        Placement p = PlacementPlanners.named(planner).plan(stats, PlacementBudget.slots(4, 4),
                PlacementPlanners.localIds(4), oneNode);
        assertThat(p.maxSlotsUsed()).isLessThanOrEqualTo(4);
        for (int[][] layer : p.holders()) {
            assertThat(layer.length).isEqualTo(8);
        }
    }
}
