package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.Placement;
import java.util.List;
import java.util.Map;

/**
 * Told of every committed epoch ({@link PlacementCoordinator#onCommitted}): the ids of the instances that committed it,
 * and the container restart counts they were placed with ({@link PlacementCoordinator#switchTo(List, Map,
 * io.moemesh.router.placement.PlacementBudget, int)}; empty when unknown): a pod whose count moved on since restarted
 * after it was placed on and holds nothing.
 */
@FunctionalInterface
public interface CommitListener {
    void committed(Placement p, List<String> ids, Map<String, Integer> restarts);
}
