package io.moemesh.router.placement;

import java.util.List;

/**
 * Today's even deal (service-common's {@code EvenPlacement}): expert e of layer number l on instance (e + l + r) mod N
 * for replicas r = 0 .. R − 1, with as many whole replicas R as the slots allow (at most min(N, ⌊N × S / E⌋), fewer where the uneven deal would
 * put more than S experts on one instance). Ignores
 * the traffic; the baseline every other planner is compared with.
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
        int slots = budget.slotsPerLayer(stats.layers(), stats.experts());
        int replicas = Math.max(1, Math.min(n, n * slots / stats.experts()));
        while (replicas > 1 && maxPerInstance(n, stats.experts(), replicas) > slots) {
            replicas--;
        }
        int[][][] holders = new int[stats.layers()][stats.experts()][replicas];
        for (int l = 0; l < stats.layers(); l++) {
            int layerNumber = stats.firstLayer() + l;
            for (int e = 0; e < stats.experts(); e++) {
                for (int r = 0; r < replicas; r++) {
                    holders[l][e][r] = (e + layerNumber + r) % n;
                }
            }
        }
        return new Placement(instanceIds, stats.firstLayer(), holders);
    }

    /** Experts the most loaded instance holds per layer when E experts are dealt with R replicas (any layer offset). */
    private static int maxPerInstance(int n, int experts, int replicas) {
        int[] held = new int[n];
        int max = 0;
        for (int e = 0; e < experts; e++) {
            for (int r = 0; r < replicas; r++) {
                max = Math.max(max, ++held[(e + r) % n]);
            }
        }
        return max;
    }
}
