package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.router.placement.PlacementBudget;
import io.moemesh.router.placement.PlacementEval;
import io.moemesh.router.placement.PlacementPlanner;
import io.moemesh.router.placement.RouteStats;
import io.moemesh.router.prediction.ModelShape;
import io.moemesh.router.trace.RouteTrace;
import java.util.List;

/**
 * Builds the placement of an epoch for a set of instances, for the model being served: the even deal, or a planner's
 * plan from the route window. Kept apart from {@link PlacementCoordinator}, which decides when to switch and runs the
 * switch; this only says what an epoch places where.
 */
final class EpochPlans {
    private final ModelShape shape;
    private final boolean sharedExpert;

    EpochPlans(ModelShape shape, boolean sharedExpert) {
        this.shape = shape;
        this.sharedExpert = sharedExpert;
    }

    /** How {@code p} does on the routes of {@code window}; null when the window is empty. */
    PlacementEval score(Placement p, RouteTrace window) {
        return window.tokens().isEmpty() ? null
                : PlacementEval.score(PlacementMessages.toDomain(p, shape.layers(), shape.experts()), window);
    }

    /** The even deal of {@code epoch} on {@code instances}, with {@code replicas} copies of every expert. */
    Placement even(long epoch, List<Instance> instances, int replicas) {
        return PlacementMessages.evenDeal(epoch, instances, shape.layers(), shape.experts(), sharedExpert, replicas);
    }

    /**
     * {@code chosen}'s plan of {@code epoch} for {@code instances} from {@code stats}, keeping {@code replicas} copies
     * of every expert within {@code budget}.
     */
    Placement planned(PlacementPlanner chosen, RouteStats stats, long epoch, List<Instance> instances,
                      PlacementBudget budget, int replicas) {
        List<String> ids = instances.stream().map(Instance::getId).toList();
        // The replicas of every expert, so one pod going never takes an expert's last copy; shared copies in the slots
        PlacementBudget withCopies = budget.withCopies(replicas, sharedExpert ? replicas : 0);
        io.moemesh.router.placement.Placement plan = chosen.plan(stats, withCopies, ids,
                PlacementMessages.domains(instances));
        return PlacementMessages.toProto(plan, epoch, instances, sharedExpert ? 1 : 0, withCopies.sharedCopies());
    }

    /** Whether {@code p} (a restored placement) places the layers and experts of the model being served. */
    boolean fitsModel(Placement p) {
        try {
            PlacementMessages.toDomain(p, shape.layers(), shape.experts());
            return p.getLayersCount() == shape.layers();
        } catch (IllegalArgumentException e) {
            return false;
        }
    }
}
