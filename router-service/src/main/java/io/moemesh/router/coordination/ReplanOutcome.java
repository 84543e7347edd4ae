package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.Placement;
import io.moemesh.router.placement.PlacementEval;

/**
 * A published epoch.
 *
 * @param placement     the placement published
 * @param planner       the planner that planned it, {@value PlacementCoordinator#EVEN} for the even deal
 * @param score         the placement scored on the route window, null when the window was empty
 * @param routesScored  tokens of the window the score used
 * @param publishNanos  from the replan's start to the publication
 */
public record ReplanOutcome(Placement placement, String planner, PlacementEval score, long routesScored,
                            long publishNanos) {
}
