package io.moemesh.router.placement;

import static io.moemesh.router.placement.RouteStatsTest.token;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.moemesh.router.trace.RouteTrace;
import java.util.List;
import org.junit.jupiter.api.Test;

class PlacementEvalTest {

    @Test
    void score_followsTheGatewayRule_visitedReplicaFirst_elseLeastLoaded_inTraceOrder() {
        // 2 instances, 1 layer... two layers: layer 0 expert 0 on both, expert 1 on A, expert 2 on B
        int[][][] holders = {
                {{0, 1}, {0}, {1}},
                {{0}, {1}, {0, 1}}};
        Placement p = new Placement(List.of("A", "B"), 5, holders);
        RouteTrace trace = new RouteTrace("t", 5, 2, 3, 2, List.of(
                // layer 0: expert 0 → A (least loaded, tie → first), then expert 2 → B; fan-out 2
                // layer 1: expert 1 → B, expert 2 → B (visited); fan-out 1
                token("0", new int[] {0, 2}, new int[] {1, 2}),
                // layer 0: expert 2 → B, then expert 0 → B (visited, although A is less loaded...) fan-out 1
                // layer 1: expert 2 → A (A 0 pairs, B 2), expert 0 → A (visited); fan-out 1
                token("1", new int[] {2, 0}, new int[] {2, 0})));
        PlacementEval e = PlacementEval.score(p, trace);
        assertThat(e.fanOut()).isCloseTo((2 + 1 + 1 + 1) / 4.0, within(1e-12));
        // layer 0 load A 1, B 3 → 3 / 2; layer 1 A 2, B 2 → 1
        assertThat(e.loadMaxOverMean()).isCloseTo((1.5 + 1.0) / 2, within(1e-12));
        // token 0: layer-0 instances (A, B) × layer-1 (B, B): A-B, A-B, B-B, B-B → 2 of 4 cross
        // token 1: (B, B) × (A, A) → 4 of 4 cross
        assertThat(e.crossPairs()).isCloseTo(6 / 8.0, within(1e-12));
        assertThat(e.extraReplicas()).isEqualTo(2);
        assertThat(e.slotsUsed()).isEqualTo(2);
    }

    @Test
    void score_refusesATraceOfOtherLayers_orAnExpertThePlacementLacks() {
        Placement p = new Placement(List.of("A"), 0, new int[][][] {{{0}, {0}}});
        RouteTrace otherLayers = new RouteTrace("x.csv", 2, 1, 2, 1, List.of(token("0", new int[] {1})));
        assertThatThrownBy(() -> PlacementEval.score(p, otherLayers)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("the placement has layers 0..0, the trace x.csv 2..2");
        RouteTrace moreExperts = new RouteTrace("y.csv", 0, 1, 4, 1, List.of(token("3", new int[] {3})));
        assertThatThrownBy(() -> PlacementEval.score(p, moreExperts)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("y.csv: token 3 layer 0 routes to expert 3, which the placement does not place");
    }

    @Test
    void placement_refusesDuplicateIds_unplacedExperts_andAnInstanceTwice() {
        assertThatThrownBy(() -> new Placement(List.of("A", "A"), 0, new int[][][] {{{0}}}))
                .hasMessageContaining("unique");
        assertThatThrownBy(() -> new Placement(List.of("A"), 2, new int[][][] {{{0}, {}}}))
                .hasMessage("layer 2 expert 1 is not placed");
        assertThatThrownBy(() -> new Placement(List.of("A", "B"), 0, new int[][][] {{{1, 1}}}))
                .hasMessageContaining("layer 0 expert 0 names instance index 1 twice");
    }
}
