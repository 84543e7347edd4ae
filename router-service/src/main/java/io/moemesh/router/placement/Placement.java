package io.moemesh.router.placement;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * A planned placement: for each MoE layer of a trace and each routed expert, the instances holding it (more than
 * one: replicas). Layers are numbered as in the trace ({@code firstLayer + index}); the protobuf form
 * ({@code router.v1.Placement}, written by {@code moemesh router plan}) uses the same numbers.
 *
 * @param instanceIds every instance, unique ids; holders name instances by their index in this list
 * @param firstLayer  the layer number of layer index 0
 * @param holders     [layer index][expert] → instance indices, each at least one, no instance twice
 */
public record Placement(List<String> instanceIds, int firstLayer, int[][][] holders) {

    public Placement {
        instanceIds = List.copyOf(instanceIds);
        if (instanceIds.isEmpty()) {
            throw new IllegalArgumentException("a placement needs at least one instance");
        }
        if (new HashSet<>(instanceIds).size() != instanceIds.size()) {
            throw new IllegalArgumentException("placement instance ids must be unique: " + instanceIds);
        }
        if (holders.length == 0) {
            throw new IllegalArgumentException("a placement needs at least one layer");
        }
        for (int l = 0; l < holders.length; l++) {
            for (int e = 0; e < holders[l].length; e++) {
                int[] h = holders[l][e];
                if (h == null || h.length == 0) {
                    throw new IllegalArgumentException("layer " + (firstLayer + l) + " expert " + e + " is not placed");
                }
                Set<Integer> seen = new HashSet<>();
                for (int i : h) {
                    if (i < 0 || i >= instanceIds.size() || !seen.add(i)) {
                        throw new IllegalArgumentException("layer " + (firstLayer + l) + " expert " + e
                                + " names instance index " + i + " twice or out of range");
                    }
                }
            }
        }
    }

    public int instances() {
        return instanceIds.size();
    }

    public int layers() {
        return holders.length;
    }

    public int experts(int layer) {
        return holders[layer].length;
    }

    /** The most experts any instance holds at any layer (the slots per instance per layer it needs). */
    public int maxSlotsUsed() {
        int max = 0;
        for (int[][] layer : holders) {
            int[] held = new int[instances()];
            for (int[] h : layer) {
                for (int i : h) {
                    max = Math.max(max, ++held[i]);
                }
            }
        }
        return max;
    }

    /** Copies beyond the first of every (layer, expert), summed over layers. */
    public int extraReplicas() {
        int n = 0;
        for (int[][] layer : holders) {
            for (int[] h : layer) {
                n += h.length - 1;
            }
        }
        return n;
    }
}
