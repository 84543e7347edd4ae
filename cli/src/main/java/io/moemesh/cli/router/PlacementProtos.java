package io.moemesh.cli.router;

import io.moemesh.proto.router.v1.ExpertPlacement;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.LayerPlacement;
import io.moemesh.router.coordination.PlacementMessages;
import io.moemesh.router.placement.Placement;
import io.moemesh.router.trace.RouteTrace;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The planner's {@link Placement} as {@code router.v1.Placement} and back. Layer numbers are the trace's
 * (FLAME 2..9, Mixtral 0..31): {@code LayerPlacement.layer} is the decoder layer index, and a trace numbers its MoE
 * layers by decoder layer, so a FLAME placement has no entries for its dense layers 0 and 1.
 */
final class PlacementProtos {
    private PlacementProtos() {
    }

    /** As the router publishes it ({@link PlacementMessages#toProto}), without a shared expert (traces have none). */
    static io.moemesh.proto.router.v1.Placement toProto(Placement p, long epoch, List<String> endpoints,
                                                        long memoryBudgetBytes) {
        List<Instance> instances = new ArrayList<>();
        for (int i = 0; i < p.instances(); i++) {
            instances.add(Instance.newBuilder().setId(p.instanceIds().get(i)).setEndpoint(endpoints.get(i))
                    .setDeviceSlot(0).setMemoryBudgetBytes(memoryBudgetBytes).build());
        }
        return PlacementMessages.toProto(p, epoch, instances, 0, 0);
    }

    /**
     * The routed experts of a placement file for the layers and experts of {@code trace}: every layer of the trace
     * and every expert it routes to must be placed; shared experts (never in a trace) and layers outside the trace
     * are refused, so a placement of another model is not scored by accident.
     */
    static Placement fromProto(io.moemesh.proto.router.v1.Placement p, String source, RouteTrace trace) {
        List<String> ids = new ArrayList<>();
        Map<String, Integer> index = new TreeMap<>();
        for (Instance in : p.getInstancesList()) {
            if (in.getId().isBlank() || index.put(in.getId(), ids.size()) != null) {
                throw new IllegalArgumentException(source + ": instance ids must be unique and non-empty, got \""
                        + in.getId() + "\" twice or blank");
            }
            ids.add(in.getId());
        }
        if (ids.isEmpty()) {
            throw new IllegalArgumentException(source + ": no instances");
        }
        int[][][] holders = new int[trace.layers()][][];
        for (LayerPlacement lp : p.getLayersList()) {
            int l = lp.getLayer() - trace.firstLayer();
            if (l < 0 || l >= trace.layers()) {
                throw new IllegalArgumentException(source + ": layer " + lp.getLayer() + " is not in the trace "
                        + trace.source() + " (layers " + trace.firstLayer() + ".." + trace.layerNumber(trace.layers() - 1)
                        + ")");
            }
            if (holders[l] != null) {
                throw new IllegalArgumentException(source + ": layer " + lp.getLayer() + " appears twice");
            }
            holders[l] = new int[trace.experts()][];
            for (ExpertPlacement ep : lp.getExpertsList()) {
                int e = ep.getExpert();
                if (ep.getShared() || e < 0 || e >= trace.experts()) { // uint32: 2^31 and above are negative here
                    throw new IllegalArgumentException(source + ": layer " + lp.getLayer() + " expert " + e
                            + " is not one of the trace's " + trace.experts() + " routed experts");
                }
                if (holders[l][e] != null) {
                    throw new IllegalArgumentException(source + ": layer " + lp.getLayer() + " expert " + e
                            + " is placed twice");
                }
                int[] h = new int[ep.getInstanceIdsCount()];
                for (int k = 0; k < h.length; k++) {
                    Integer i = index.get(ep.getInstanceIds(k));
                    if (i == null) {
                        throw new IllegalArgumentException(source + ": layer " + lp.getLayer() + " expert " + e
                                + " names unknown instance " + ep.getInstanceIds(k));
                    }
                    h[k] = i;
                }
                holders[l][e] = h;
            }
        }
        for (int l = 0; l < trace.layers(); l++) {
            if (holders[l] == null) {
                throw new IllegalArgumentException(source + ": layer " + trace.layerNumber(l) + " of the trace is not placed");
            }
        }
        try {
            return new Placement(ids, trace.firstLayer(), holders);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(source + ": " + e.getMessage(), e);
        }
    }
}
