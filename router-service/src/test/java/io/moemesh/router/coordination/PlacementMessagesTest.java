package io.moemesh.router.coordination;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.proto.router.v1.ExpertPlacement;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.LayerPlacement;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.router.placement.PlacementBudget;
import io.moemesh.router.placement.RoundRobinPlanner;
import io.moemesh.router.placement.RouteStats;
import io.moemesh.router.placement.SyntheticTraces;
import io.moemesh.service.placement.EvenPlacement;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class PlacementMessagesTest {

    static Instance instance(int i, String node) {
        return Instance.newBuilder().setId("expert-service-" + i).setEndpoint("10.0.0." + (i + 1) + ":9100")
                .setFailureDomain(node).build();
    }

    /** Four pods, listed by name, the first two on node a and the last two on node b. */
    static final List<Instance> TWO_NODES = List.of(instance(0, "node-a"), instance(1, "node-a"),
            instance(2, "node-b"), instance(3, "node-b"));

    /** The distinct nodes each expert of each layer is on, shared ones included. */
    static void assertEveryExpertOnBothNodes(Placement p) {
        Map<String, String> node = new HashMap<>();
        p.getInstancesList().forEach(in -> node.put(in.getId(), in.getFailureDomain()));
        for (LayerPlacement lp : p.getLayersList()) {
            for (ExpertPlacement ep : lp.getExpertsList()) {
                assertThat(ep.getInstanceIdsList().stream().map(node::get).distinct())
                        .as("layer %d expert %d on %s", lp.getLayer(), ep.getExpert(), ep.getInstanceIdsList())
                        .containsExactlyInAnyOrder("node-a", "node-b");
            }
        }
    }

    @Test
    void toDomain_ofALayerPast2To31_isRefusedNamingItUnsigned_notAnIndexOutOfBounds() {
        Placement good = EvenPlacement.build(3, List.of(Instance.newBuilder().setId("expert-0")
                .setEndpoint("127.0.0.1:1").build()), 4, 8, false, 1);
        // uint32 4294967295 reads as -1 in Java
        Placement bad = good.toBuilder().setLayers(2, good.getLayers(2).toBuilder().setLayer(-1)).build();
        assertThatThrownBy(() -> PlacementMessages.toDomain(bad, 4, 8)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("placement epoch 3 places layer 4294967295, the model has 4");
    }

    @ParameterizedTest
    @CsvSource({"1, 4, 8, false, 1", "3, 2, 8, true, 2", "4, 3, 60, true, 4", "5, 1, 5, false, 3"})
    void evenDeal_withNoFailureDomainKnown_isExactlyWhatTheLocalMeshPublishes(int instances, int layers, int experts,
                                                                             boolean shared, int replicas) {
        List<Instance> ins = IntStream.range(0, instances).mapToObj(i -> instance(i, "")).toList();
        assertThat(PlacementMessages.evenDeal(7, ins, layers, experts, shared, replicas))
                .isEqualTo(EvenPlacement.build(7, ins, layers, experts, shared, replicas));
    }

    @Test
    void evenDeal_twoCopies_fourPodsOnTwoNodes_putsEveryExpertAndTheSharedOneOnBothNodes() {
        Placement p = PlacementMessages.evenDeal(1, TWO_NODES, 4, 8, true, 2);
        assertEveryExpertOnBothNodes(p);
        assertThat(p.getInstancesList()).isEqualTo(TWO_NODES);
    }

    @Test
    void plannedPlacement_putsTheSharedExpertsCopiesOnBothNodes_too() {
        RouteStats stats = RouteStats.of(SyntheticTraces.clustered(100, 2, 8, 2, 2, 0.1, 3));
        List<String> ids = TWO_NODES.stream().map(Instance::getId).toList();
        var plan = new RoundRobinPlanner().plan(stats, PlacementBudget.slots(4, 2), ids,
                PlacementMessages.domains(TWO_NODES));
        Placement p = PlacementMessages.toProto(plan, 2, TWO_NODES, 1, 2);
        Map<String, String> node = new HashMap<>();
        TWO_NODES.forEach(in -> node.put(in.getId(), in.getFailureDomain()));
        for (LayerPlacement lp : p.getLayersList()) {
            ExpertPlacement shared = lp.getExperts(8);
            assertThat(shared.getShared()).isTrue();
            assertThat(shared.getInstanceIdsList().stream().map(node::get).distinct()).hasSize(2);
        }
    }
}
