package io.moemesh.router.discovery;

import io.moemesh.proto.router.v1.Instance;
import java.util.List;
import java.util.function.Consumer;

/**
 * The configured instances ({@code moemesh.router.instances} or {@code instances-from}; what {@code ./moemesh up}
 * gives the router), delivered once at start: the set never changes, so the router places on it once and re-places
 * only on Replan.
 */
public final class StaticInstanceDiscovery implements InstanceDiscovery {
    private final List<Instance> instances;

    /** @param instances the configured instances, in the configured order (which the placement keeps) */
    public StaticInstanceDiscovery(List<Instance> instances) {
        this.instances = List.copyOf(instances);
    }

    @Override
    public void start(Consumer<List<Instance>> onChange) {
        onChange.accept(instances);
    }

    @Override
    public int ready() {
        return instances.size();
    }

    @Override
    public int seen() {
        return instances.size();
    }

    @Override
    public void close() {
    }
}
