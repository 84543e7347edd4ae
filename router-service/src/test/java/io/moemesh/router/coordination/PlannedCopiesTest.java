package io.moemesh.router.coordination;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.proto.router.v1.ExpertPlacement;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.LayerPlacement;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.router.placement.PlacementBudget;
import io.moemesh.router.reports.ReportedToken;
import io.moemesh.router.reports.RouteBook;
import io.moemesh.router.support.TestRoutes;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Executors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * What a planned epoch keeps whatever the traffic: the replicas of every expert (an expert idle in the route window
 * included), on distinct instances and nodes, and the shared expert's copies within the slots.
 */
class PlannedCopiesTest {
    static final int MIN_ROUTES = 100;
    /** Four pods on two nodes. */
    static final List<Instance> FOUR = IntStream.range(0, 4).mapToObj(i -> Instance.newBuilder().setId("expert-" + i)
            .setEndpoint("10.0.0." + i + ":9100").setFailureDomain(i < 2 ? "node-a" : "node-b").build()).toList();

    @TempDir
    Path stateDir;
    final ScriptedLoader loader = new ScriptedLoader(() -> stateDir);
    final RouteBook book = TestRoutes.book(1000);
    final List<PlacementCoordinator> coordinators = new ArrayList<>();

    @AfterEach
    void close() {
        coordinators.forEach(PlacementCoordinator::close);
    }

    PlacementCoordinator coordinator(String planner, boolean sharedExpert, int replicas, PlacementBudget budget) {
        var settings = new PlacementCoordinator.Settings(List.of(), book.shape(), sharedExpert, replicas, budget,
                planner, MIN_ROUTES, Duration.ofSeconds(30));
        PlacementCoordinator c = new PlacementCoordinator(settings, book, loader, new EpochStore(stateDir),
                Executors.newSingleThreadExecutor(), Executors.newFixedThreadPool(4), System::nanoTime);
        coordinators.add(c);
        return c;
    }

    /** A skewed window: at each layer l only experts l, l+1 and l+2 (of 8) are chosen; the other five are idle. */
    void skewedWindow() {
        for (int t = 0; t < 2 * MIN_ROUTES; t++) {
            book.ingest(List.<ReportedToken>of(TestRoutes.token("r" + t, 0, t % 2)));
        }
    }

    /** The epoch 1 even deal on the four pods, then a switch planned from the skewed window. */
    Placement planned(String planner, boolean sharedExpert, int replicas, PlacementBudget budget) {
        PlacementCoordinator c = coordinator(planner, sharedExpert, replicas, budget);
        assertThat(c.switchTo(FOUR, budget, replicas).join().planner()).isEqualTo(PlacementCoordinator.EVEN);
        skewedWindow();
        ReplanOutcome o = c.switchTo(FOUR, budget, replicas).join();
        assertThat(o.planner()).isEqualTo(planner);
        return o.placement();
    }

    @ParameterizedTest
    @ValueSource(strings = {"affinity", "affinity-stats", "round-robin"})
    void aPlannedEpoch_keepsReplicasCopiesOfEveryExpert_onDistinctNodes_idleExpertsIncluded(String planner) {
        // 24 slots per layer: 16 for two copies of each of the 8 experts, 8 left for the busy ones.
        Placement p = planned(planner, false, 2, PlacementBudget.slots(4, 6));
        Map<String, String> node = new HashMap<>();
        FOUR.forEach(in -> node.put(in.getId(), in.getFailureDomain()));
        for (LayerPlacement layer : p.getLayersList()) {
            assertThat(layer.getExpertsList()).hasSize(8);
            for (ExpertPlacement e : layer.getExpertsList()) {
                assertThat(new HashSet<>(e.getInstanceIdsList())).as("layer %d expert %d", layer.getLayer(),
                        e.getExpert()).hasSizeGreaterThanOrEqualTo(2).hasSize(e.getInstanceIdsCount());
                assertThat(e.getInstanceIdsList().stream().map(node::get).distinct())
                        .as("layer %d expert %d: one node going leaves a copy", layer.getLayer(), e.getExpert())
                        .hasSize(2);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"affinity", "affinity-stats", "round-robin"})
    void theSharedExpertsCopies_countWithinTheSlots_ofAPlannedEpoch(String planner) {
        // 20 slots per layer: two copies of the 8 routed experts and of the shared one take 18.
        Placement p = planned(planner, true, 2, PlacementBudget.slots(4, 5));
        for (LayerPlacement layer : p.getLayersList()) {
            Map<String, Integer> held = new HashMap<>();
            Set<Integer> shared = new HashSet<>();
            for (ExpertPlacement e : layer.getExpertsList()) {
                e.getInstanceIdsList().forEach(id -> held.merge(id, 1, Integer::sum));
                if (e.getShared()) {
                    shared.add(e.getExpert());
                    assertThat(e.getInstanceIdsList()).doesNotHaveDuplicates().hasSize(2);
                }
            }
            assertThat(shared).containsExactly(8);
            assertThat(held.values()).as("experts per instance at layer %d", layer.getLayer())
                    .allSatisfy(n -> assertThat(n).isLessThanOrEqualTo(5));
        }
    }
}
