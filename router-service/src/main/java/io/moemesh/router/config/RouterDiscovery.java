package io.moemesh.router.config;

import io.moemesh.router.discovery.ConfigMapPublisher;
import io.moemesh.router.discovery.InstanceDiscovery;
import io.moemesh.router.discovery.PlacedGate;
import io.moemesh.router.kubernetes.RouterLease;

/**
 * The discovery of one router: its instance source and, in Kubernetes mode, the ConfigMap publisher (null in static
 * mode, where {@code <state-dir>/placement.json} is the placement file) and the readiness gate's condition writer (null
 * unless {@code moemesh.router.discovery.readiness-gate}), and the placement lease (null unless
 * {@code moemesh.router.discovery.lease}).
 */
record RouterDiscovery(InstanceDiscovery instances, ConfigMapPublisher publisher, PlacedGate gate, RouterLease lease)
        implements AutoCloseable {
    RouterDiscovery(InstanceDiscovery instances, ConfigMapPublisher publisher, PlacedGate gate) {
        this(instances, publisher, gate, null);
    }

    @Override
    public void close() {
        if (lease != null) {
            lease.close();
        }
        instances.close();
        if (publisher != null) {
            publisher.close();
        }
        if (gate != null) {
            gate.close();
        }
    }
}
