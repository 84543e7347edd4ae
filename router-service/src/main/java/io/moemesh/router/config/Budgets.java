package io.moemesh.router.config;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.router.placement.PlacementBudget;

/** The planner's budget from the settings and the model, refused at startup when it cannot hold the model. */
final class Budgets {
    private Budgets() {
    }

    static PlacementBudget of(RouterProperties props, ModelConfig c, int instances) {
        return of(props, c, instances, props.replicas());
    }

    /** The budget for {@code instances} instances whose even deal has {@code replicas} copies of every expert. */
    static PlacementBudget of(RouterProperties props, ModelConfig c, int instances, int replicas) {
        int experts = c.numExperts();
        if (replicas > instances) {
            throw new IllegalArgumentException("moemesh.router.replicas must be in [1, " + instances + "] for "
                    + instances + " instances, got " + replicas);
        }
        // The even deal (epoch 1) puts replicas copies of every routed expert on consecutive instances.
        int evenSlots = ceilDiv((long) experts * replicas, instances);
        int slots = props.slotsPerInstance() > 0 ? props.slotsPerInstance()
                : Math.max(evenSlots, ceilDiv(experts * 5L, 4L * instances));
        if (slots < evenSlots) {
            throw new IllegalArgumentException("moemesh.router.slots-per-instance " + slots + " is too small: the even deal"
                    + " of " + experts + " experts with moemesh.router.replicas " + replicas + " over " + instances
                    + " instances needs " + evenSlots + " per instance per layer");
        }
        long expertBytes = 3L * c.hiddenSize() * c.expertIntermediateSize() * dtypeBytes(c.dtype());
        PlacementBudget budget = new PlacementBudget(instances, slots, props.memoryBudgetBytes(),
                Math.max(1, expertBytes));
        try {
            budget.slotsPerLayer(c.numLayers(), experts);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("moemesh.router.slots-per-instance / memory-budget-bytes: "
                    + e.getMessage().replace("--slots-per-instance", "slots-per-instance")
                    .replace("--memory-budget", "memory-budget-bytes").replace("--instances", "instances"));
        }
        if (props.memoryBudgetBytes() > 0 && props.memoryBudgetBytes() / budget.expertBytes() / c.numLayers() < evenSlots) {
            throw new IllegalArgumentException("moemesh.router.memory-budget-bytes " + props.memoryBudgetBytes()
                    + " holds " + props.memoryBudgetBytes() / budget.expertBytes() / c.numLayers() + " experts of "
                    + budget.expertBytes() + " bytes per layer; the even deal with moemesh.router.replicas "
                    + replicas + " needs " + evenSlots);
        }
        return budget;
    }

    private static int dtypeBytes(String dtype) {
        return dtype != null && (dtype.contains("32")) ? 4 : 2;
    }

    private static int ceilDiv(long a, long b) {
        return (int) ((a + b - 1) / b);
    }
}
