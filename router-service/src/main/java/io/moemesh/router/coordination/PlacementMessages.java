package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.ExpertPlacement;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.LayerPlacement;
import io.moemesh.router.placement.EvenDeal;
import io.moemesh.router.placement.FailureDomains;
import io.moemesh.router.placement.Placement;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The planner's {@link Placement} (routed experts, layers from 0) as the published {@code router.v1.Placement} and
 * back, and one instance's share of a placement. The service's layers are the model's decoder layers 0..L-1 (every
 * layer is MoE in the models the mesh serves).
 */
public final class PlacementMessages {
    private PlacementMessages() {
    }

    /** The failure domains of the instances (Instance.failure_domain, empty = unknown), in their order. */
    public static FailureDomains domains(List<Instance> instances) {
        return FailureDomains.of(instances.stream().map(Instance::getFailureDomain).toList());
    }

    /**
     * The even deal: {@code replicas} copies of every expert (the shared one included), dealt by {@link EvenDeal} so
     * that the copies of one expert land in distinct failure domains where the domains allow. With no domain known
     * this is exactly {@code EvenPlacement.build}, what {@code moemesh up} publishes.
     *
     * @throws IllegalArgumentException when there is no instance or replicas is not in [1, instances]
     */
    public static io.moemesh.proto.router.v1.Placement evenDeal(long epoch, List<Instance> instances, int layers,
                                                                int routedExperts, boolean sharedExpert,
                                                                int replicas) {
        if (instances.isEmpty()) {
            throw new IllegalArgumentException("a placement needs at least one instance");
        }
        int experts = routedExperts + (sharedExpert ? 1 : 0);
        int[][][] holders = new EvenDeal(domains(instances)).holders(0, layers, experts, replicas);
        io.moemesh.proto.router.v1.Placement.Builder b = io.moemesh.proto.router.v1.Placement.newBuilder()
                .setEpoch(epoch).addAllInstances(instances);
        for (int l = 0; l < layers; l++) {
            LayerPlacement.Builder lp = LayerPlacement.newBuilder().setLayer(l);
            for (int e = 0; e < experts; e++) {
                ExpertPlacement.Builder ep = ExpertPlacement.newBuilder().setExpert(e).setShared(e == routedExperts);
                for (int i : holders[l][e]) {
                    ep.addInstanceIds(instances.get(i).getId());
                }
                lp.addExperts(ep);
            }
            b.addLayers(lp);
        }
        return b.build();
    }

    /**
     * @param sharedExperts 1 when the model has an always-on shared expert (id = routed experts), else 0: planners
     *                      place routed experts only, so the shared one goes, like in the even deal, on
     *                      {@code sharedReplicas} consecutive instances of the deal's order offset by the layer
     *                      number (in distinct failure domains where they allow: every token visits it), the slots
     *                      the planners kept free for it ({@code PlacementBudget.sharedCopies})
     */
    public static io.moemesh.proto.router.v1.Placement toProto(Placement p, long epoch, List<Instance> instances,
                                                               int sharedExperts, int sharedReplicas) {
        if (!p.instanceIds().equals(instances.stream().map(Instance::getId).toList())) {
            throw new IllegalArgumentException("the plan's instances " + p.instanceIds() + " are not the configured ones");
        }
        io.moemesh.proto.router.v1.Placement.Builder b = io.moemesh.proto.router.v1.Placement.newBuilder()
                .setEpoch(epoch).addAllInstances(instances);
        EvenDeal deal = new EvenDeal(domains(instances));
        for (int l = 0; l < p.layers(); l++) {
            LayerPlacement.Builder lp = LayerPlacement.newBuilder().setLayer(p.firstLayer() + l);
            for (int e = 0; e < p.experts(l); e++) {
                ExpertPlacement.Builder ep = ExpertPlacement.newBuilder().setExpert(e);
                for (int i : p.holders()[l][e]) {
                    ep.addInstanceIds(p.instanceIds().get(i));
                }
                lp.addExperts(ep);
            }
            for (int s = 0; s < sharedExperts; s++) {
                int e = p.experts(l) + s;
                ExpertPlacement.Builder ep = ExpertPlacement.newBuilder().setExpert(e).setShared(true);
                for (int r = 0; r < sharedReplicas; r++) {
                    ep.addInstanceIds(instances.get(deal.holder(e, p.firstLayer() + l, r)).getId());
                }
                lp.addExperts(ep);
            }
            b.addLayers(lp);
        }
        return b.build();
    }

    /**
     * The routed experts of a published placement as a planner {@link Placement}, for scoring.
     *
     * @throws IllegalArgumentException when it does not place every routed expert of layers 0..layers-1
     */
    public static Placement toDomain(io.moemesh.proto.router.v1.Placement p, int layers, int experts) {
        List<String> ids = new ArrayList<>();
        Map<String, Integer> index = new HashMap<>();
        for (Instance in : p.getInstancesList()) {
            index.put(in.getId(), ids.size());
            ids.add(in.getId());
        }
        int[][][] holders = new int[layers][experts][];
        for (LayerPlacement lp : p.getLayersList()) {
            // uint32 on the wire: 2^31 and above read as negative ints, so compare unsigned
            if (Integer.toUnsignedLong(lp.getLayer()) >= layers) {
                throw new IllegalArgumentException("placement epoch " + p.getEpoch() + " places layer "
                        + Integer.toUnsignedString(lp.getLayer()) + ", the model has " + layers);
            }
            for (ExpertPlacement ep : lp.getExpertsList()) {
                if (ep.getShared() || Integer.toUnsignedLong(ep.getExpert()) >= experts) {
                    continue;
                }
                int[] h = new int[ep.getInstanceIdsCount()];
                for (int k = 0; k < h.length; k++) {
                    Integer i = index.get(ep.getInstanceIds(k));
                    if (i == null) {
                        throw new IllegalArgumentException("placement epoch " + p.getEpoch() + " names unknown instance "
                                + ep.getInstanceIds(k));
                    }
                    h[k] = i;
                }
                holders[lp.getLayer()][ep.getExpert()] = h;
            }
        }
        return new Placement(ids, 0, holders);
    }

    /** The experts {@code instanceId} holds in {@code p}, ascending by (layer, expert). */
    public static List<AssignedExpert> assignment(io.moemesh.proto.router.v1.Placement p, String instanceId) {
        List<AssignedExpert> out = new ArrayList<>();
        for (LayerPlacement lp : p.getLayersList()) {
            for (ExpertPlacement ep : lp.getExpertsList()) {
                if (ep.getInstanceIdsList().contains(instanceId)) {
                    out.add(new AssignedExpert(lp.getLayer(), ep.getExpert()));
                }
            }
        }
        return out;
    }

    /**
     * Whether a restored epoch was placed on these instances: by id and endpoint, in order, the only fields that say
     * which processes hold its experts. Full equality would refuse every placement saved before a field was added
     * (failure_domain), so a router upgrade would deal afresh instead of continuing at the epoch the gateways follow.
     */
    static boolean sameInstances(List<Instance> restored, List<Instance> now) {
        if (restored.size() != now.size()) {
            return false;
        }
        for (int i = 0; i < restored.size(); i++) {
            Instance a = restored.get(i);
            Instance b = now.get(i);
            if (!a.getId().equals(b.getId()) || !a.getEndpoint().equals(b.getEndpoint())) {
                return false;
            }
        }
        return true;
    }
}
