package io.moemesh.router.config;

import io.moemesh.router.discovery.ConfigMapPublisher;
import io.moemesh.router.discovery.InstanceDiscovery;

/**
 * The discovery of one router: its instance source and, in Kubernetes mode, the ConfigMap publisher (null in static
 * mode, where {@code <state-dir>/placement.json} is the placement file).
 */
record RouterDiscovery(InstanceDiscovery instances, ConfigMapPublisher publisher) implements AutoCloseable {
    @Override
    public void close() {
        instances.close();
        if (publisher != null) {
            publisher.close();
        }
    }
}
