package io.moemesh.gateway.config;

import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.moemesh.gateway.dispatch.ResilientInstance;
import io.moemesh.service.expert.InstanceClient;
import io.moemesh.service.expert.InstanceHealth;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * Per expert-service instance series (docs/metrics.md), kept by instance id: its breaker state, its gRPC health,
 * whether the dispatcher routes to it, its arena use, and its calls' latency and errors.
 *
 * <p>An id may have two clients open at once: {@code MeshExpertDispatch} connects the client of a new endpoint
 * before it closes the old one, and closes the new one again when the placement is refused. Micrometer hands the
 * meter already registered under the same name and tags back instead of a new one, so meters registered per client
 * would stay bound to the first client, and closing either would remove the series of both. Here the series belong
 * to the id: they read the id's oldest open client (the one the placement in force uses until the switch closes
 * it), and are removed when the id's last client is closed, that is when the id left the placement. The latency
 * timer of a transport goes once no open client of the id uses it.
 */
final class InstanceMeters {
    private static final List<CircuitBreaker.State> STATES =
            List.of(CircuitBreaker.State.CLOSED, CircuitBreaker.State.OPEN, CircuitBreaker.State.HALF_OPEN);

    private final MeterRegistry meters;
    /** Guarded by this for changes; read by the call observers (gRPC threads) without the lock. */
    private final Map<String, Series> byId = new ConcurrentHashMap<>();

    InstanceMeters(MeterRegistry meters) {
        this.meters = meters;
    }

    /** An open client of an id and how it is reached ({@code tcp}, {@code unix}). */
    private record Open(ResilientInstance instance, String transport) {
    }

    /**
     * One id's meters and its open clients, the oldest first. {@link #open} and {@link #closedArenaCalls} are guarded
     * by this series' own lock, which is never held while calling the registry: a scrape reads them under it.
     */
    private final class Series {
        final String id;
        final List<Open> open = new ArrayList<>();
        /** The oldest open client: what the gauges read. */
        volatile ResilientInstance current;
        /** Arena calls of the id's clients closed already: the counter stays monotonic across a replaced client. */
        long closedArenaCalls;
        final List<Meter> gauges = new ArrayList<>();
        final Map<String, Timer> latency = new ConcurrentHashMap<>();
        final Counter errors;

        Series(String id, ResilientInstance first) {
            this.id = id;
            this.current = first;
            for (CircuitBreaker.State s : STATES) {
                gauges.add(Gauge.builder("moemesh.gateway.instance.breaker.state", this,
                                t -> t.current.state() == s ? 1 : 0)
                        .description("1 for the circuit breaker state the instance is in, 0 for the others")
                        .tag("instance", id).tag("state", s.name().toLowerCase(Locale.ROOT)).register(meters));
            }
            for (InstanceHealth h : InstanceHealth.values()) {
                gauges.add(Gauge.builder("moemesh.gateway.instance.health", this, t -> t.current.health() == h ? 1 : 0)
                        .description("1 for what the instance's gRPC health watch says now, 0 for the other values")
                        .tag("instance", id).tag("status", h.name().toLowerCase(Locale.ROOT)).register(meters));
            }
            gauges.add(Gauge.builder("moemesh.gateway.instance.available", this, t -> t.current.available() ? 1 : 0)
                    .description("1 while expert calls may be routed to the instance (breaker not open, health not down)")
                    .tag("instance", id).register(meters));
            gauges.add(Gauge.builder("moemesh.gateway.instance.arena.slots.in.use", this,
                            t -> t.current.arenaSlotsInUse())
                    .description("slots of the shared-memory arena held by calls whose reply has not arrived (0 over TCP)")
                    .tag("instance", id).register(meters));
            gauges.add(FunctionCounter.builder("moemesh.gateway.instance.arena.calls", this, Series::arenaCalls)
                    .description("expert calls whose activations and outputs crossed through the shared-memory arena")
                    .tag("instance", id).register(meters));
            errors = Counter.builder("moemesh.gateway.dispatch.errors").description("failed ExpertBatch messages")
                    .tag("instance", id).register(meters);
        }

        double arenaCalls() {
            synchronized (this) {
                long sum = closedArenaCalls;
                for (Open o : open) {
                    sum += o.instance().arenaCalls();
                }
                return sum;
            }
        }

        Timer timer(String transport) {
            return Timer.builder("moemesh.gateway.dispatch.latency")
                    .description("one ExpertBatch message, gateway → expert-service → gateway").tag("instance", id)
                    .tag("transport", transport).publishPercentileHistogram().register(meters);
        }

        void remove() {
            gauges.forEach(meters::remove);
            meters.remove(errors);
            latency.values().forEach(meters::remove);
        }
    }

    /**
     * {@code client} (reached over {@code transport}) behind its breaker and bulkhead as {@code d} sets them; its state
     * and calls go to its id's series until it is closed.
     */
    ResilientInstance open(InstanceClient client, String transport, DispatchProperties d) {
        ResilientInstance instance = new ResilientInstance(client, d.maxConcurrentCalls(), d.failureRateThreshold(),
                d.openStateWait(), (id, nanos, error) -> observe(id, transport, nanos, error));
        synchronized (this) {
            Series s = byId.computeIfAbsent(instance.id(), id -> new Series(id, instance));
            synchronized (s) {
                s.open.add(new Open(instance, transport));
            }
            s.latency.computeIfAbsent(transport, s::timer);
        }
        instance.onClose(() -> closed(instance));
        return instance;
    }

    /**
     * A call's outcome, recorded while its id is in the placement: a call of a client closed since (its reply or
     * failure arriving late) must not bring back the series of an id that left.
     */
    private void observe(String id, String transport, long nanos, Throwable error) {
        Series s = byId.get(id);
        if (s == null) {
            return;
        }
        Timer t = s.latency.get(transport);
        if (t != null) {
            t.record(nanos, TimeUnit.NANOSECONDS);
        }
        if (error != null) {
            s.errors.increment();
        }
    }

    private synchronized void closed(ResilientInstance instance) {
        Series s = byId.get(instance.id());
        if (s == null) {
            return;
        }
        List<Open> left;
        synchronized (s) {
            if (!s.open.removeIf(o -> o.instance() == instance)) {
                return;
            }
            s.closedArenaCalls += instance.arenaCalls();
            left = List.copyOf(s.open);
        }
        if (left.isEmpty()) {
            byId.remove(s.id);
            s.remove();
            return;
        }
        s.current = left.getFirst().instance();
        for (String transport : List.copyOf(s.latency.keySet())) {
            if (left.stream().noneMatch(o -> o.transport().equals(transport))) {
                meters.remove(s.latency.remove(transport));
            }
        }
    }
}
