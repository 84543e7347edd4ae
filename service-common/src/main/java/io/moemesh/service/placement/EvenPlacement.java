package io.moemesh.service.placement;

import io.moemesh.proto.router.v1.ExpertPlacement;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.LayerPlacement;
import io.moemesh.proto.router.v1.Placement;
import java.util.List;

/**
 * The placement of the local mesh and of tests: experts dealt round-robin over the instances, each on
 * {@code replicas} consecutive instances; the layer offsets the deal so one instance does not get expert 0
 * of every layer. The router's affinity-packing planner replaces it in production.
 */
public final class EvenPlacement {
    private EvenPlacement() {
    }

    /**
     * The deal's rule: replica {@code replica} of expert {@code expert} in layer number {@code layer} goes to
     * instance {@code (expert + layer + replica) mod instances}. The router's round-robin planner uses the same rule
     * so its baseline is exactly what {@code moemesh up} publishes.
     */
    public static int holder(int expert, int layer, int replica, int instances) {
        return (expert + layer + replica) % instances;
    }

    /**
     * @param routedExperts experts per layer the router chooses among
     * @param sharedExpert  whether the model has a shared expert (id {@code routedExperts}) every token visits
     */
    public static Placement build(long epoch, List<Instance> instances, int layers, int routedExperts,
                                  boolean sharedExpert, int replicas) {
        int n = instances.size();
        if (n == 0) {
            throw new IllegalArgumentException("a placement needs at least one instance");
        }
        if (replicas < 1 || replicas > n) {
            throw new IllegalArgumentException("replicas must be in [1, " + n + "] for " + n + " instances, got " + replicas);
        }
        Placement.Builder p = Placement.newBuilder().setEpoch(epoch).addAllInstances(instances);
        int experts = routedExperts + (sharedExpert ? 1 : 0);
        for (int l = 0; l < layers; l++) {
            LayerPlacement.Builder lp = LayerPlacement.newBuilder().setLayer(l);
            for (int e = 0; e < experts; e++) {
                ExpertPlacement.Builder ep = ExpertPlacement.newBuilder().setExpert(e).setShared(e == routedExperts);
                for (int r = 0; r < replicas; r++) {
                    ep.addInstanceIds(instances.get(holder(e, l, r, n)).getId());
                }
                lp.addExperts(ep);
            }
            p.addLayers(lp);
        }
        return p.build();
    }
}
