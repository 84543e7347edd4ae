package io.moemesh.gateway.dispatch;

import java.util.List;
import java.util.SortedSet;

/** Where one layer's tokens went in a step: per instance, how many tokens and which experts. */
public record LayerDispatchRecord(int layer, List<InstanceShare> instances) {

    public record InstanceShare(String instanceId, int tokens, SortedSet<Integer> experts) {
    }
}
