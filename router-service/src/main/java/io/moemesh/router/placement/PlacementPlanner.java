package io.moemesh.router.placement;

/**
 * Plans where every expert of every layer lives, from observed route statistics. Implementations are pure and
 * deterministic (same stats and budget → same placement), so a replan is reproducible offline; they run in the
 * background, never on the decode path.
 */
public interface PlacementPlanner {

    /** The name {@link PlacementPlanners#named(String)} knows it by. */
    String name();

    /**
     * @param instanceIds the instances, in order; {@code budget.instances()} of them
     * @throws IllegalArgumentException when the budget cannot hold every expert of a layer once
     */
    Placement plan(RouteStats stats, PlacementBudget budget, java.util.List<String> instanceIds);
}
