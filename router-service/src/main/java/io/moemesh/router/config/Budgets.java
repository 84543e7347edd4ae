package io.moemesh.router.config;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.router.placement.EvenDeal;
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
        // The even deal (epoch 1) puts replicas copies of every expert, the shared one included, on consecutive
        // instances; a planned epoch keeps as many copies of every expert and its shared copies in the same slots.
        int dealt = c.dispatchableExperts();
        int evenSlots = EvenDeal.mostPerInstance(dealt, replicas, instances);
        int slots = props.slotsPerInstance() > 0 ? props.slotsPerInstance()
                : Math.max(evenSlots, ceilDiv(experts * 5L, 4L * instances));
        if (slots < evenSlots) {
            throw new IllegalArgumentException("moemesh.router.slots-per-instance " + slots + " is too small: the even deal"
                    + " of " + experts + " experts" + (c.hasSharedExpert() ? " and the shared expert" : "")
                    + " with moemesh.router.replicas " + replicas + " over " + instances + " instances needs "
                    + evenSlots + " per instance per layer");
        }
        int dtype = dtypeBytes(c.dtype());
        long expertBytes = 3L * c.hiddenSize() * c.expertIntermediateSize() * dtype;
        long sharedBytes = 3L * c.hiddenSize() * c.sharedExpertIntermediateSize() * dtype;
        PlacementBudget budget = new PlacementBudget(instances, slots, props.memoryBudgetBytes(),
                Math.max(1, expertBytes), replicas, c.hasSharedExpert() ? replicas : 0, Math.max(0, sharedBytes));
        int perLayer;
        try {
            perLayer = budget.slotsPerLayer(c.numLayers(), experts);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("moemesh.router.slots-per-instance / memory-budget-bytes: "
                    + e.getMessage().replace("--slots-per-instance", "slots-per-instance")
                    .replace("--memory-budget", "memory-budget-bytes").replace("--instances", "instances")
                    .replace("--replicas", "replicas"));
        }
        if (props.memoryBudgetBytes() > 0 && perLayer < evenSlots) {
            throw new IllegalArgumentException("moemesh.router.memory-budget-bytes " + props.memoryBudgetBytes()
                    + " holds " + perLayer + " experts of " + budget.expertBytes() + " bytes per layer"
                    + (c.hasSharedExpert() ? " (the shared expert's " + budget.sharedExpertBytes()
                    + " bytes among them)" : "") + "; the even deal with moemesh.router.replicas " + replicas
                    + " needs " + evenSlots);
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
