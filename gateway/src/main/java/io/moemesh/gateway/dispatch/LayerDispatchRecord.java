package io.moemesh.gateway.dispatch;

import java.util.List;
import java.util.SortedSet;

/**
 * Where one request's prompt rows went at one layer: per instance, ascending by id, how many of its rows the
 * instance received and which experts it applied to them (gateway.proto's {@code LayerDispatch}).
 */
public record LayerDispatchRecord(int layer, List<InstanceShare> instances) {

    public LayerDispatchRecord {
        instances = List.copyOf(instances);
    }

    /**
     * @param tokens  rows (prompt positions) of the request the instance received at this layer, each counted once
     * @param experts distinct experts the instance applied to them (the shared expert as {@code numExperts})
     */
    public record InstanceShare(String instanceId, int tokens, SortedSet<Integer> experts) {
    }
}
