package io.moemesh.router.discovery;

import io.moemesh.proto.router.v1.Instance;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Where the router's expert-service instances come from: the configured list ({@link StaticInstanceDiscovery}, local
 * mode) or the expert-service pods the Kubernetes API lists and watches (issue 12, item 3). Either way the router places
 * on the READY set it delivers, and re-places when that set changes.
 */
public interface InstanceDiscovery extends AutoCloseable {

    /**
     * Starts delivering: {@code onChange} gets the current ready set (sorted by instance id) once it is known, then
     * every different one, one call at a time, on the discovery's own thread.
     */
    void start(Consumer<List<Instance>> onChange);

    /**
     * The container restart counts of the last delivered ready set, by instance id (read in {@code onChange}: a set
     * is delivered again when only these changed); empty where the source knows none (the configured list).
     */
    default Map<String, Integer> restarts() {
        return Map.of();
    }

    /** Instances in the last delivered ready set. */
    int ready();

    /** Instances (pods) seen, ready or not, ignored ones included. */
    int seen();

    @Override
    void close();
}
