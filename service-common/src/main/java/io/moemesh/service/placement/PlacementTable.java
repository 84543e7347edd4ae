package io.moemesh.service.placement;

import io.moemesh.proto.router.v1.ExpertPlacement;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.LayerPlacement;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.service.grpc.InstanceEndpoint;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * A validated placement, indexed for the data path: for each (layer, expert) the instances holding it.
 * Validation is against the model: every layer and every dispatchable expert (routed experts plus the shared
 * expert id of Qwen2-MoE) must be placed on at least one declared instance, and nothing else may be; and the epoch
 * must be set (≥ 1, as placement.proto says).
 *
 * @param holders [layer][expert] → indices into {@link #instances()}
 */
public record PlacementTable(long epoch, List<Instance> instances, int[][][] holders, boolean[][] shared) {

    public static PlacementTable of(Placement p, int numLayers, int dispatchableExperts) {
        String where = "placement epoch " + Long.toUnsignedString(p.getEpoch());
        if (p.getEpoch() == 0) {
            // router.v1.Placement: epochs start at 1. An ExpertBatch under placement_epoch 0 is not checked against
            // the instance's epochs at all, so a placement without one would switch that check off for the mesh.
            throw new IllegalArgumentException(where + ": epoch must be ≥ 1 (a missing epoch reads as 0)");
        }
        if (p.getInstancesCount() == 0) {
            throw new IllegalArgumentException(where + ": no instances");
        }
        Map<String, Integer> index = new HashMap<>();
        for (int i = 0; i < p.getInstancesCount(); i++) {
            Instance in = p.getInstances(i);
            if (in.getId().isBlank()) {
                throw new IllegalArgumentException(where + ": instance " + i + " has no id");
            }
            try {
                InstanceEndpoint.parse(in.getEndpoint());
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(where + ": instance " + in.getId() + ": " + e.getMessage(), e);
            }
            if (index.put(in.getId(), i) != null) {
                throw new IllegalArgumentException(where + ": instance id " + in.getId() + " appears twice");
            }
        }
        int[][][] holders = new int[numLayers][dispatchableExperts][];
        boolean[][] shared = new boolean[numLayers][dispatchableExperts];
        for (LayerPlacement lp : p.getLayersList()) {
            // uint32 on the wire: 2^31 and above read as negative ints, so compare unsigned
            if (Integer.toUnsignedLong(lp.getLayer()) >= numLayers) {
                throw new IllegalArgumentException(where + ": layer " + Integer.toUnsignedString(lp.getLayer())
                        + " does not exist (model has " + numLayers + ")");
            }
            int l = lp.getLayer();
            for (ExpertPlacement ep : lp.getExpertsList()) {
                if (Integer.toUnsignedLong(ep.getExpert()) >= dispatchableExperts) {
                    throw new IllegalArgumentException(where + ": layer " + l + " expert "
                            + Integer.toUnsignedString(ep.getExpert()) + " does not exist (model has "
                            + dispatchableExperts + " dispatchable experts)");
                }
                int e = ep.getExpert();
                if (holders[l][e] != null) {
                    throw new IllegalArgumentException(where + ": layer " + l + " expert " + e + " is placed twice");
                }
                if (ep.getInstanceIdsCount() == 0) {
                    throw new IllegalArgumentException(where + ": layer " + l + " expert " + e + " has no instance");
                }
                int[] h = new int[ep.getInstanceIdsCount()];
                for (int i = 0; i < h.length; i++) {
                    Integer idx = index.get(ep.getInstanceIds(i));
                    if (idx == null) {
                        throw new IllegalArgumentException(where + ": layer " + l + " expert " + e
                                + " names unknown instance " + ep.getInstanceIds(i));
                    }
                    h[i] = idx;
                }
                holders[l][e] = h;
                shared[l][e] = ep.getShared();
            }
        }
        for (int l = 0; l < numLayers; l++) {
            for (int e = 0; e < dispatchableExperts; e++) {
                if (holders[l][e] == null) {
                    throw new IllegalArgumentException(where + ": layer " + l + " expert " + e + " is not placed");
                }
            }
        }
        return new PlacementTable(p.getEpoch(), List.copyOf(p.getInstancesList()), holders, shared);
    }

    public int instanceIndex(String id) {
        for (int i = 0; i < instances.size(); i++) {
            if (instances.get(i).getId().equals(id)) {
                return i;
            }
        }
        return -1;
    }

    /** The (layer, expert) pairs assigned to an instance, sorted. */
    public List<int[]> assignedTo(String instanceId) {
        int idx = instanceIndex(instanceId);
        List<int[]> out = new ArrayList<>();
        if (idx < 0) {
            return out;
        }
        for (int l = 0; l < holders.length; l++) {
            for (int e = 0; e < holders[l].length; e++) {
                if (Arrays.stream(holders[l][e]).anyMatch(h -> h == idx)) {
                    out.add(new int[] {l, e});
                }
            }
        }
        return out;
    }

    /** One line per instance: its id, endpoint and how many experts of each layer it holds. */
    public List<String> summary() {
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < instances.size(); i++) {
            Instance in = instances.get(i);
            StringBuilder sb = new StringBuilder(in.getId()).append(" ").append(in.getEndpoint()).append(" experts:");
            for (int l = 0; l < holders.length; l++) {
                Set<Integer> held = new TreeSet<>();
                for (int e = 0; e < holders[l].length; e++) {
                    for (int h : holders[l][e]) {
                        if (h == i) {
                            held.add(e);
                        }
                    }
                }
                sb.append(" L").append(l).append(held);
            }
            lines.add(sb.toString().replace(", ", ","));
        }
        return lines;
    }
}
