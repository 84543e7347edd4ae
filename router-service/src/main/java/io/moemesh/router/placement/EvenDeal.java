package io.moemesh.router.placement;

import io.moemesh.service.placement.EvenPlacement;

/**
 * The even deal over failure domains: {@link EvenPlacement}'s rule (replica r of expert e in layer number l on the
 * instance at position {@code (e + l + r) mod N}) walked over the instances in {@link FailureDomains#interleaved()}
 * order instead of list order. Every instance still gets the same number of copies (the deal stays even), and the
 * {@code replicas} consecutive positions of one expert's copies fall in distinct domains wherever the domain sizes
 * allow: with N instances on nodes of N / D each and replicas ≤ D, always. Where they do not (one node holds more
 * than N / replicas of the instances), the positions that wrap onto the large node share it, as few as the even
 * split leaves room for: giving every expert a copy elsewhere would overload the other nodes' instances.
 *
 * <p>With unknown domains the order is the list order: exactly what {@code moemesh up} publishes
 * ({@link EvenPlacement#build}).
 */
public final class EvenDeal {
    private final int[] order;

    public EvenDeal(FailureDomains domains) {
        this.order = domains.interleaved();
    }

    /**
     * The most copies the deal of {@code replicas} copies of each of {@code experts} experts puts on one instance in a
     * layer: the slots per instance per layer it needs. Not always ceil(experts × replicas / instances): expert e's
     * copies are the window of positions e + l .. e + l + replicas - 1, and the (experts mod instances) positions
     * that start one more window than the others are consecutive, so one instance can be in min(that, replicas) of
     * those extra windows (6 experts, 2 replicas, 4 instances: 4 on one instance, not 3). The domain order is a
     * permutation of the instances, so it does not change the figure.
     *
     * @param replicas in [1, instances]
     */
    public static int mostPerInstance(int experts, int replicas, int instances) {
        return replicas * (experts / instances) + Math.min(experts % instances, replicas);
    }

    /** The instance index of replica {@code replica} of {@code expert} in layer number {@code layer}. */
    public int holder(int expert, int layer, int replica) {
        return order[EvenPlacement.holder(expert, layer, replica, order.length)];
    }

    /**
     * The holders of {@code replicas} copies of every expert, [layer index][expert] → instance indices.
     *
     * @throws IllegalArgumentException when replicas is not in [1, instances]
     */
    public int[][][] holders(int firstLayer, int layers, int experts, int replicas) {
        if (replicas < 1 || replicas > order.length) {
            throw new IllegalArgumentException("replicas must be in [1, " + order.length + "] for " + order.length
                    + " instances, got " + replicas);
        }
        int[][][] h = new int[layers][experts][replicas];
        for (int l = 0; l < layers; l++) {
            for (int e = 0; e < experts; e++) {
                for (int r = 0; r < replicas; r++) {
                    h[l][e][r] = holder(e, firstLayer + l, r);
                }
            }
        }
        return h;
    }
}
