package io.moemesh.router.placement;

/**
 * How much room a planner has: {@code instances} expert-service instances, each holding at most
 * {@code slotsPerInstance} experts of every layer and, when {@code memoryBudgetBytes > 0}, at most
 * {@code memoryBudgetBytes} of expert weights in all ({@code expertBytes} per routed expert of any layer). The memory
 * budget is spread evenly over the layers: it allows {@code memoryBudgetBytes / (expertBytes × layers)} experts per
 * layer. And what every plan must keep, whatever the traffic: {@code min(replicas, instances)} copies of every routed
 * expert (so one instance going never takes the last copy of an expert when replicas ≥ 2), and
 * {@code sharedCopies} copies of an always-on shared expert per layer, each taking one of the holding instance's slots
 * (the planners place routed experts only; the shared copies go where the even deal puts them,
 * {@link EvenDeal#holder} of expert id {@code experts} in the layer).
 *
 * @param instances         instances, ≥ 1
 * @param slotsPerInstance  experts per instance per layer (the shared expert's copy included), ≥ 1
 * @param memoryBudgetBytes bytes of expert weights per instance (the shared expert's included), 0 for no memory limit
 *                          beyond the slots
 * @param expertBytes       bytes of one routed expert's weights; > 0 when a memory budget is given
 * @param replicas          copies every routed expert keeps at least (at most one per instance: capped at
 *                          {@code instances}), ≥ 1; the slots left over go to the busiest experts
 * @param sharedCopies      copies of the shared expert per layer, in [0, instances]; 0 when the model has none
 * @param sharedExpertBytes bytes of the shared expert's weights (Qwen2-MoE's is larger than a routed one); 0 = as a
 *                          routed expert
 */
public record PlacementBudget(int instances, int slotsPerInstance, long memoryBudgetBytes, long expertBytes,
                              int replicas, int sharedCopies, long sharedExpertBytes) {

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
        if (replicas < 1) {
            throw new IllegalArgumentException("--replicas must be at least 1, got " + replicas);
        }
        if (sharedCopies < 0 || sharedCopies > instances) {
            throw new IllegalArgumentException("shared expert copies must be in [0, " + instances + "] for " + instances
                    + " instances, got " + sharedCopies);
        }
        if (sharedExpertBytes < 0) {
            throw new IllegalArgumentException("shared expert bytes must be 0 or more, got " + sharedExpertBytes);
        }
    }

    /** One copy of every expert at least, no shared expert. */
    public PlacementBudget(int instances, int slotsPerInstance, long memoryBudgetBytes, long expertBytes) {
        this(instances, slotsPerInstance, memoryBudgetBytes, expertBytes, 1, 0, 0);
    }

    public static PlacementBudget slots(int instances, int slotsPerInstance) {
        return new PlacementBudget(instances, slotsPerInstance, 0, 0);
    }

    /** This budget with {@code replicas} copies of every routed expert at least, {@code sharedCopies} shared ones. */
    public PlacementBudget withCopies(int replicas, int sharedCopies) {
        return new PlacementBudget(instances, slotsPerInstance, memoryBudgetBytes, expertBytes, replicas, sharedCopies,
                sharedExpertBytes);
    }

    /** The copies every routed expert keeps in a plan: min(replicas, instances). */
    public int copies() {
        return Math.min(replicas, instances);
    }

    /**
     * Experts each instance may hold per layer for a model of {@code layers} × {@code experts} routed experts (one of
     * them the shared expert's copy where the instance holds one), refusing a budget that cannot hold every expert of
     * a layer once, or {@link #copies()} copies of each plus the shared copies. With a memory budget and a shared
     * expert, an instance holding a shared copy must also fit it next to its other experts in its bytes per layer, so
     * the slots are at most 1 + what the rest of those bytes holds of routed experts.
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
            if (sharedCopies > 0) {
                long perLayer = memoryBudgetBytes / layers;
                long shared = sharedExpertBytes > 0 ? sharedExpertBytes : expertBytes;
                if (perLayer < shared) {
                    throw new IllegalArgumentException("--memory-budget " + memoryBudgetBytes + " bytes is " + perLayer
                            + " bytes per layer over " + layers + " layers: less than the shared expert's " + shared
                            + " bytes");
                }
                slots = Math.min(slots, 1 + (perLayer - shared) / expertBytes);
            }
        }
        if (instances * slots < experts) {
            throw new IllegalArgumentException("--slots-per-instance " + slotsPerInstance + " × --instances " + instances
                    + " = " + instances * slots + " slots per layer cannot hold the " + experts
                    + " experts of a layer once (needs at least " + ceilDiv(experts, instances) + " slots per instance)");
        }
        long needed = (long) experts * copies() + sharedCopies;
        if (instances * slots < needed) {
            throw new IllegalArgumentException((memoryBudgetBytes > 0 ? "--slots-per-instance / --memory-budget: "
                    : "--slots-per-instance: ") + slots + " experts per instance per layer × --instances " + instances
                    + " = " + instances * slots + " slots per layer cannot hold " + copies() + " copies of each of the "
                    + experts + " experts" + (sharedCopies > 0 ? " and " + sharedCopies + " of the shared expert" : "")
                    + " (--replicas " + replicas + "; needs at least " + ceilDiv(needed, instances)
                    + " per instance)");
        }
        return (int) Math.min(slots, experts + (sharedCopies > 0 ? 1 : 0));
    }

    private static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }
}
