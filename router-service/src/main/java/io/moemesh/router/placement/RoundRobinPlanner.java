package io.moemesh.router.placement;

import io.moemesh.service.placement.EvenPlacement;
import java.util.List;

/**
 * Today's even deal with one copy per expert ({@link EvenPlacement#holder} as {@code moemesh up} publishes
 * it by default, {@code --replicas 1}): expert e of layer number l on instance (e + l) mod N. Ignores the traffic and
 * leaves spare slots empty; the baseline every other planner is compared with (the round-robin figures).
 * With known failure domains it walks the instances in the router's even-deal order ({@link EvenDeal}); one copy per
 * expert has no second copy to keep apart, so the domains change which instance, not how many experts it gets.
 */
public final class RoundRobinPlanner implements PlacementPlanner {
    public static final String NAME = "round-robin";

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public Placement plan(RouteStats stats, PlacementBudget budget, List<String> instanceIds,
                          FailureDomains domains) {
        PlacementPlanners.requireIds(budget, instanceIds, domains);
        budget.slotsPerLayer(stats.layers(), stats.experts()); // refuses a budget that cannot hold every expert once
        return new Placement(instanceIds, stats.firstLayer(),
                new EvenDeal(domains).holders(stats.firstLayer(), stats.layers(), stats.experts(), 1));
    }
}
