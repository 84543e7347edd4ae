package io.moemesh.router.metrics;

import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.moemesh.router.coordination.InstanceSetFollower;
import io.moemesh.router.discovery.ConfigMapPublisher;
import io.moemesh.router.discovery.InstanceDiscovery;

/** The discovery's metrics (docs/metrics.md, "Router service"): instances found, switches, ConfigMap writes. */
public final class DiscoveryMetrics {
    private DiscoveryMetrics() {
    }

    /** @param publisher the ConfigMap publisher, or null without one (static mode: its metrics are not registered) */
    public static void register(MeterRegistry registry, InstanceDiscovery discovery, InstanceSetFollower follower,
                                ConfigMapPublisher publisher) {
        Gauge.builder("moemesh.router.discovery.instances", discovery, InstanceDiscovery::ready).tag("state", "ready")
                .description("Expert-service instances in the ready set the router places on").register(registry);
        Gauge.builder("moemesh.router.discovery.instances", discovery, InstanceDiscovery::seen).tag("state", "seen")
                .description("Expert-service instances (pods) seen, ready or not, ignored ones included")
                .register(registry);
        FunctionCounter.builder("moemesh.router.discovery.replans", follower, InstanceSetFollower::switches)
                .description("Placement switches started because the ready instance set changed (the first epoch and "
                        + "retries included)").register(registry);
        if (publisher == null) {
            return;
        }
        FunctionCounter.builder("moemesh.router.configmap.writes", publisher, ConfigMapPublisher::writes)
                .description("Placements written to the placement ConfigMap").register(registry);
        FunctionCounter.builder("moemesh.router.configmap.failures", publisher, ConfigMapPublisher::failures)
                .description("Placements given up without being written to the ConfigMap: refused by the API server "
                        + "(403, 404, 422: not retried), a newer epoch there, or overtaken by a newer placement while "
                        + "being retried").register(registry);
        FunctionCounter.builder("moemesh.router.configmap.retries", publisher, ConfigMapPublisher::retries)
                .description("ConfigMap writes that failed for now (no answer, 5xx, 429, conflicts) and were tried "
                        + "again").register(registry);
        FunctionCounter.builder("moemesh.router.configmap.conflicts", publisher, ConfigMapPublisher::conflicts)
                .description("409 Conflicts met writing the ConfigMap (another writer)").register(registry);
        FunctionCounter.builder("moemesh.router.configmap.gzipped", publisher, ConfigMapPublisher::gzipped)
                .description("Placements written gzipped (binaryData placement.json.gz): past the gzip threshold")
                .register(registry);
        FunctionCounter.builder("moemesh.router.configmap.oversize", publisher, ConfigMapPublisher::oversize)
                .description("Placements larger than the ConfigMap's threshold even gzipped, not written")
                .register(registry);
    }
}
