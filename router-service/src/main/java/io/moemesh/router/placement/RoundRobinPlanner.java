package io.moemesh.router.placement;

import io.moemesh.service.placement.EvenPlacement;
import java.util.List;

/**
 * Today's even deal ({@link EvenPlacement#holder} as {@code moemesh up} publishes it): replica r of expert e of layer
 * number l on instance (e + l + r) mod N, with the budget's {@link PlacementBudget#copies() replicas} (one by default,
 * {@code --replicas 1}). Ignores the traffic and leaves spare slots empty; the baseline every other planner is compared
 * with (the round-robin figures). With known failure domains it walks the instances in the router's even-deal
 * order ({@link EvenDeal}), so the copies of one expert land in distinct domains where the domains allow. A shared
 * expert's copies, dealt the same way as expert id {@code experts}, fill exactly the slots the deal leaves them.
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
        // refuses a budget that cannot hold the replicas of every expert (and the shared copies)
        int slots = budget.slotsPerLayer(stats.layers(), stats.experts());
        int n = budget.instances();
        int copies = budget.copies();
        boolean shared = budget.sharedCopies() > 0;
        // The deal's own figure: the routed copies, and the shared expert's dealt as expert id experts (the same
        // positions the published placement gives it when its copies are the replicas).
        int most = shared && budget.sharedCopies() == copies
                ? EvenDeal.mostPerInstance(stats.experts() + 1, copies, n)
                : EvenDeal.mostPerInstance(stats.experts(), copies, n) + (shared ? 1 : 0);
        if (most > slots) {
            throw new IllegalArgumentException("the even deal of " + copies + " copies of each of the "
                    + stats.experts() + " experts" + (shared ? " and the shared expert" : "") + " over " + n
                    + " instances needs " + most + " slots per instance per layer, the budget has " + slots);
        }
        return new Placement(instanceIds, stats.firstLayer(),
                new EvenDeal(domains).holders(stats.firstLayer(), stats.layers(), stats.experts(), copies));
    }
}
