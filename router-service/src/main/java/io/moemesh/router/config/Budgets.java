package io.moemesh.router.config;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.router.placement.EvenDeal;
import io.moemesh.router.placement.PlacementBudget;
import io.moemesh.service.settings.SettingRefusedException;

/**
 * The planner's budget from the settings and the model for a set of instances, refused (SettingRefusedException,
 * an IllegalArgumentException naming the property) when it cannot hold the even deal: at startup for the static
 * instances, at each switch for discovered ones.
 */
final class Budgets {
    private Budgets() {
    }

    static PlacementBudget of(RouterProperties props, ModelConfig c, int instances) {
        return of(props, c, instances, props.replicas());
    }

    /** The budget for {@code instances} instances whose even deal has {@code replicas} copies of every expert. */
    static PlacementBudget of(RouterProperties props, ModelConfig c, int instances, int replicas) {
        return of(props.slotsPerInstance(), props.memoryBudgetBytes(), c, instances, replicas);
    }

    /**
     * The budget from {@code moemesh.router.slots-per-instance} ({@code slotsPerInstance}, 0 = derived) and
     * {@code memory-budget-bytes}: derived, the slots are the even deal's and a quarter of the routed experts more
     * (spread over the instances), so a planned epoch has room for copies of the busiest experts on top of the
     * replicas every expert keeps; the memory budget, when set, caps it ({@link PlacementBudget#slotsPerLayer}).
     */
    static PlacementBudget of(int slotsPerInstance, long memoryBudgetBytes, ModelConfig c, int instances,
                              int replicas) {
        int experts = c.numExperts();
        if (replicas > instances) {
            throw new SettingRefusedException("moemesh.router.replicas", "moemesh.router.replicas must be in [1, "
                    + instances + "] for "
                    + instances + " instances, got " + replicas);
        }
        // The even deal (epoch 1) puts replicas copies of every expert, the shared one included, on consecutive
        // instances; a planned epoch keeps as many copies of every expert and its shared copies in the same slots.
        int dealt = c.dispatchableExperts();
        int evenSlots = EvenDeal.mostPerInstance(dealt, replicas, instances);
        // Not max(evenSlots, 1.25 × experts / instances): with replicas >= 2 the even deal alone takes that much,
        // and the planners would have no slot left for load (4 instances, 8 experts, 2 replicas: 16 of 16 taken).
        int slots = slotsPerInstance > 0 ? slotsPerInstance : evenSlots + ceilDiv(experts, 4L * instances);
        if (slots < evenSlots) {
            throw new SettingRefusedException("moemesh.router.slots-per-instance", "moemesh.router.slots-per-instance "
                    + slots + " is too small: the even deal"
                    + " of " + experts + " experts" + (c.hasSharedExpert() ? " and the shared expert" : "")
                    + " with moemesh.router.replicas " + replicas + " over " + instances + " instances needs "
                    + evenSlots + " per instance per layer");
        }
        int dtype = dtypeBytes(c.dtype());
        long expertBytes = 3L * c.hiddenSize() * c.expertIntermediateSize() * dtype;
        long sharedBytes = 3L * c.hiddenSize() * c.sharedExpertIntermediateSize() * dtype;
        PlacementBudget budget = new PlacementBudget(instances, slots, memoryBudgetBytes,
                Math.max(1, expertBytes), replicas, c.hasSharedExpert() ? replicas : 0, Math.max(0, sharedBytes));
        int perLayer;
        try {
            perLayer = budget.slotsPerLayer(c.numLayers(), experts);
        } catch (IllegalArgumentException e) {
            throw new SettingRefusedException(memoryBudgetBytes > 0 ? "moemesh.router.memory-budget-bytes"
                    : "moemesh.router.slots-per-instance", "moemesh.router.slots-per-instance / memory-budget-bytes: "
                    + e.getMessage().replace("--slots-per-instance", "slots-per-instance")
                    .replace("--memory-budget", "memory-budget-bytes").replace("--instances", "instances")
                    .replace("--replicas", "replicas"));
        }
        if (memoryBudgetBytes > 0 && perLayer < evenSlots) {
            throw new SettingRefusedException("moemesh.router.memory-budget-bytes",
                    "moemesh.router.memory-budget-bytes " + memoryBudgetBytes
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
