package io.moemesh.gateway.config;

import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.moemesh.gateway.dispatch.ResilientInstance;
import io.moemesh.service.expert.InstanceHealth;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Per expert-service instance gauges (docs/metrics.md): its breaker state, its gRPC health, and whether the
 * dispatcher routes to it. Removed when the instance leaves the placement, so a gone instance leaves no series.
 */
final class InstanceMeters {
    private static final List<CircuitBreaker.State> STATES =
            List.of(CircuitBreaker.State.CLOSED, CircuitBreaker.State.OPEN, CircuitBreaker.State.HALF_OPEN);

    private InstanceMeters() {
    }

    static ResilientInstance register(MeterRegistry meters, ResilientInstance instance) {
        List<Meter> registered = new ArrayList<>();
        for (CircuitBreaker.State s : STATES) {
            registered.add(Gauge.builder("moemesh.gateway.instance.breaker.state", instance, i -> i.state() == s ? 1 : 0)
                    .description("1 for the circuit breaker state the instance is in, 0 for the others")
                    .tag("instance", instance.id()).tag("state", s.name().toLowerCase(Locale.ROOT)).register(meters));
        }
        for (InstanceHealth h : InstanceHealth.values()) {
            registered.add(Gauge.builder("moemesh.gateway.instance.health", instance, i -> i.health() == h ? 1 : 0)
                    .description("1 for what the instance's gRPC health watch says now, 0 for the other values")
                    .tag("instance", instance.id()).tag("status", h.name().toLowerCase(Locale.ROOT)).register(meters));
        }
        registered.add(Gauge.builder("moemesh.gateway.instance.available", instance, i -> i.available() ? 1 : 0)
                .description("1 while expert calls may be routed to the instance (breaker not open, health not down)")
                .tag("instance", instance.id()).register(meters));
        registered.add(Gauge.builder("moemesh.gateway.instance.arena.slots.in.use", instance,
                        ResilientInstance::arenaSlotsInUse)
                .description("slots of the shared-memory arena held by calls whose reply has not arrived (0 over TCP)")
                .tag("instance", instance.id()).register(meters));
        registered.add(FunctionCounter.builder("moemesh.gateway.instance.arena.calls", instance,
                        ResilientInstance::arenaCalls)
                .description("expert calls whose activations and outputs crossed through the shared-memory arena")
                .tag("instance", instance.id()).register(meters));
        instance.onClose(() -> registered.forEach(meters::remove));
        return instance;
    }
}
