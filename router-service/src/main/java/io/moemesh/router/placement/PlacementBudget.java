package io.moemesh.router.placement;

/**
 * How much room a planner has: {@code instances} expert-service instances, each holding at most
 * {@code slotsPerInstance} experts of every layer and, when {@code memoryBudgetBytes > 0}, at most
 * {@code memoryBudgetBytes} of expert weights in all ({@code expertBytes} per expert of any layer). The memory budget
 * is spread evenly over the layers: it allows {@code memoryBudgetBytes / (expertBytes × layers)} experts per layer.
 *
 * @param instances         instances, ≥ 1
 * @param slotsPerInstance  experts per instance per layer, ≥ 1
 * @param memoryBudgetBytes bytes of expert weights per instance, 0 for no memory limit beyond the slots
 * @param expertBytes       bytes of one expert's weights; > 0 when a memory budget is given
 */
public record PlacementBudget(int instances, int slotsPerInstance, long memoryBudgetBytes, long expertBytes) {

    public PlacementBudget {
        if (instances < 1) {
            throw new IllegalArgumentException("--instances must be at least 1, got " + instances);
        }
        if (slotsPerInstance < 1) {
            throw new IllegalArgumentException("--slots-per-instance must be at least 1, got " + slotsPerInstance);
        }
        if (memoryBudgetBytes < 0) {
            throw new IllegalArgumentException("--memory-budget must be 0 or more bytes, got " + memoryBudgetBytes);
        }
        if (memoryBudgetBytes > 0 && expertBytes < 1) {
            throw new IllegalArgumentException("--expert-bytes must be at least 1 with --memory-budget, got " + expertBytes);
        }
    }

    public static PlacementBudget slots(int instances, int slotsPerInstance) {
        return new PlacementBudget(instances, slotsPerInstance, 0, 0);
    }

    /**
     * Experts each instance may hold per layer for a model of {@code layers} × {@code experts}, refusing a budget
     * that cannot hold every expert of a layer at least once.
     */
    public int slotsPerLayer(int layers, int experts) {
        long slots = slotsPerInstance;
        if (memoryBudgetBytes > 0) {
            long byMemory = memoryBudgetBytes / expertBytes / layers;
            if ((long) instances * byMemory < experts) {
                throw new IllegalArgumentException("--memory-budget " + memoryBudgetBytes + " bytes holds "
                        + memoryBudgetBytes / expertBytes + " experts of " + expertBytes + " bytes per instance, "
                        + byMemory + " per layer over " + layers + " layers: " + instances + " instances cannot hold the "
                        + experts + " experts of a layer once (needs at least "
                        + ceilDiv(experts, instances) * layers * expertBytes + " bytes)");
            }
            slots = Math.min(slots, byMemory);
        }
        if (instances * slots < experts) {
            throw new IllegalArgumentException("--slots-per-instance " + slotsPerInstance + " × --instances " + instances
                    + " = " + instances * slots + " slots per layer cannot hold the " + experts
                    + " experts of a layer once (needs at least " + ceilDiv(experts, instances) + " slots per instance)");
        }
        return (int) Math.min(slots, experts);
    }

    private static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }
}
