package io.moemesh.expert.metrics;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.moemesh.service.grpc.HopBufferPool;
import io.moemesh.service.grpc.TensorArrayPool;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.binder.BaseUnits;
import io.moemesh.expert.assignment.AssignmentManager;
import io.moemesh.expert.batch.LoadTracker;
import io.moemesh.expert.residency.ResidentSet;
import java.time.Duration;
import java.time.temporal.ChronoUnit;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * The expert service's Prometheus metrics, all named {@code moemesh_expert_*}: batch sizes, compute and queue
 * time per layer, resident-set hits, misses and bytes, prefetch loads, hits and wasted prefetches, the served and
 * prepared placement epochs, load, and per-message errors by gRPC status code.
 */
public final class ExpertMetrics {
    /**
     * Fixed buckets from 10 µs (a GPU expert FFN is 20-100 µs) to 1 s, rather than Micrometer's ~70 default
     * histogram buckets, because the compute timer exists once per layer (32+ layers on real models).
     */
    private static final Duration[] LATENCY_BUCKETS = java.util.stream.Stream.of(10L, 25L, 50L, 100L, 250L, 500L,
            1_000L, 2_500L, 5_000L, 10_000L, 25_000L, 50_000L, 100_000L, 250_000L, 1_000_000L)
            .map(us -> Duration.of(us, ChronoUnit.MICROS)).toArray(Duration[]::new);
    private final MeterRegistry registry;
    private final DistributionSummary batchTokens;
    private final Timer[] computeByLayer;
    private final Timer queue;
    private final Map<String, Counter> errors = new ConcurrentHashMap<>();

    public ExpertMetrics(MeterRegistry registry, int numLayers, ResidentSet resident, AssignmentManager assignments,
                         LoadTracker load) {
        this.registry = registry;
        batchTokens = DistributionSummary.builder("moemesh.expert.batch.tokens")
                .description("Token rows per ExpertBatch message").baseUnit("tokens")
                .serviceLevelObjectives(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
                .register(registry);
        computeByLayer = new Timer[numLayers];
        for (int l = 0; l < numLayers; l++) {
            computeByLayer[l] = Timer.builder("moemesh.expert.compute")
                    .description("Expert FFN compute time of one ExpertBatch message").tag("layer", Integer.toString(l))
                    .serviceLevelObjectives(LATENCY_BUCKETS).register(registry);
        }
        queue = Timer.builder("moemesh.expert.queue")
                .description("Wait of an ExpertBatch message between arrival and the start of compute")
                .serviceLevelObjectives(LATENCY_BUCKETS).register(registry);
        FunctionCounter.builder("moemesh.expert.resident.hits", resident, ResidentSet::hits)
                .description("Expert lookups served from the resident set").register(registry);
        FunctionCounter.builder("moemesh.expert.resident.misses", resident, ResidentSet::misses)
                .description("Expert lookups that had to load the expert: a batch waited on the critical path, "
                        + "whether or not a prefetch of it was queued").register(registry);
        FunctionCounter.builder("moemesh.expert.prefetch.loads", resident, ResidentSet::prefetchLoads)
                .description("Experts a prefetch hint made resident").register(registry);
        FunctionCounter.builder("moemesh.expert.prefetch.hits", resident, ResidentSet::prefetchHits)
                .description("Prefetched experts a batch used before their eviction").register(registry);
        FunctionCounter.builder("moemesh.expert.prefetch.wasted", resident, ResidentSet::prefetchWasted)
                .description("Prefetched experts evicted or dropped before any batch used them").register(registry);
        Gauge.builder("moemesh.hop.buffer.pool.bytes.in.use", HopBufferPool.shared(), HopBufferPool::bytesInUse)
                .description("bytes of the per-layer hop's conversion chunks in use (returns to 0 between messages)")
                .tag("service", "expert-service").register(registry);
        Gauge.builder("moemesh.hop.tensor.pool.bytes.idle", TensorArrayPool.shared(), TensorArrayPool::idleBytes)
                .description("bytes of reused hop tensor arrays idle in the pool (at most 64 MiB)")
                .tag("service", "expert-service").register(registry);
        Gauge.builder("moemesh.expert.resident", resident, ResidentSet::residentBytes).baseUnit(BaseUnits.BYTES)
                .description("Bytes of compute-ready expert weights held").register(registry);
        Gauge.builder("moemesh.expert.budget", resident, ResidentSet::budgetBytes).baseUnit(BaseUnits.BYTES)
                .description("Memory budget of the resident set").register(registry);
        Gauge.builder("moemesh.expert.epoch", assignments, AssignmentManager::servingEpoch)
                .description("Placement epoch served").register(registry);
        Gauge.builder("moemesh.expert.prepared.epoch", assignments, AssignmentManager::preparedEpoch)
                .description("Placement epoch prepared (LoadAssignment PREPARE) and not yet committed or aborted, "
                        + "answered next to the served one; 0 = none").register(registry);
        Gauge.builder("moemesh.expert.inflight.batches", load, LoadTracker::inFlightBatches)
                .description("ExpertBatch messages received and not yet answered").register(registry);
        Gauge.builder("moemesh.expert.open.streams", load, LoadTracker::openStreams)
                .description("Open ExpertBatch streams").register(registry);
        Gauge.builder("moemesh.expert.tokens.per.second", load, LoadTracker::tokensPerSecond)
                .description("Token rows computed per second over the last minute").register(registry);
    }

    public void batchComputed(int layer, int tokens, long queueNanos, long computeNanos) {
        batchTokens.record(tokens);
        computeByLayer[layer].record(computeNanos, TimeUnit.NANOSECONDS);
        queue.record(queueNanos, TimeUnit.NANOSECONDS);
    }

    /**
     * A failed ExpertBatch message or control call (answered with a status, or ending its call unread:
     * told by RequestParsingGuard), by gRPC status code name (e.g. INVALID_ARGUMENT).
     */
    public void error(String code) {
        errors.computeIfAbsent(code, c -> Counter.builder("moemesh.expert.errors").tag("code", c)
                .description("Failed ExpertBatch messages and control calls by gRPC status code").register(registry))
                .increment();
    }
}
