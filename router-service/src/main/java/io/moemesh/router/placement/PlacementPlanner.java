package io.moemesh.router.placement;

import java.util.List;

/**
 * Plans where every expert of every layer lives, from observed route statistics. Implementations are pure and
 * deterministic (same stats, budget and domains → same placement), so a replan is reproducible offline; they run in
 * the background, never on the decode path.
 */
public interface PlacementPlanner {

    /** The name {@link PlacementPlanners#named(String)} knows it by. */
    String name();

    /**
     * Plans with nothing known about where the instances run (each its own failure domain): what {@code moemesh
     * router plan} and {@code moemesh bench planner} do.
     *
     * @param instanceIds the instances, in order; {@code budget.instances()} of them
     * @throws IllegalArgumentException when the budget cannot hold every expert of a layer once
     */
    default Placement plan(RouteStats stats, PlacementBudget budget, List<String> instanceIds) {
        return plan(stats, budget, instanceIds, FailureDomains.unknown(instanceIds.size()));
    }

    /**
     * Plans with the copies of each expert in distinct failure domains whenever enough distinct domains have room
     * (sharing one only when not; never failing because of the domains).
     *
     * @param instanceIds the instances, in order; {@code budget.instances()} of them
     * @param domains     the failure domain of each instance, in the same order
     * @throws IllegalArgumentException when the budget cannot hold every expert of a layer once
     */
    Placement plan(RouteStats stats, PlacementBudget budget, List<String> instanceIds, FailureDomains domains);
}
