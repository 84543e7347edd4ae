package io.moemesh.router.placement;

import io.moemesh.service.placement.EvenPlacement;
import java.util.List;

/**
 * Today's even deal with one copy per expert ({@link EvenPlacement#holder} as {@code moemesh up} publishes
 * it by default, {@code --replicas 1}): expert e of layer number l on instance (e + l) mod N. Ignores the traffic and
 * leaves spare slots empty; the baseline every other planner is compared with (the round-robin figures).
 */
public final class RoundRobinPlanner implements PlacementPlanner {
    public static final String NAME = "round-robin";

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public Placement plan(RouteStats stats, PlacementBudget budget, List<String> instanceIds) {
        PlacementPlanners.requireIds(budget, instanceIds);
        int n = budget.instances();
        budget.slotsPerLayer(stats.layers(), stats.experts()); // refuses a budget that cannot hold every expert once
        int[][][] holders = new int[stats.layers()][stats.experts()][];
        for (int l = 0; l < stats.layers(); l++) {
            int layerNumber = stats.firstLayer() + l;
            for (int e = 0; e < stats.experts(); e++) {
                holders[l][e] = new int[] {EvenPlacement.holder(e, layerNumber, 0, n)};
            }
        }
        return new Placement(instanceIds, stats.firstLayer(), holders);
    }
}
