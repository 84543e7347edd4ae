package io.moemesh.kvcache.metrics;

import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.tier.TierStats;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.ToDoubleFunction;

/**
 * The kvcache-service's metrics (docs/metrics.md, "KV-cache service"), tagged {@code model} (the model directory's
 * name) and, per tier, {@code tier} ({@code dram}, {@code ssd} or {@code csd}). The tier counters are read from the
 * tiers' own counters at scrape time (one snapshot per meter; a scrape is rare next to the puts and gets), the
 * latencies are recorded by the gRPC adapters around each block's store and restore.
 */
public final class KvCacheMetrics {
    private final Map<String, Timer> store = new HashMap<>();
    private final Map<String, Timer> restore = new HashMap<>();

    public KvCacheMetrics(MeterRegistry registry, ServedModels models) {
        for (ServedModel m : models.all()) {
            Tags model = Tags.of("model", m.name());
            store.put(m.name(), Timer.builder("moemesh.kvcache.store").tags(model)
                    .description("Storing one block of a Put into the tiers (DRAM, or SSD when DRAM is full of pinned "
                            + "blocks; demotions the put causes included), from its last byte to its acknowledgement")
                    .register(registry));
            restore.put(m.name(), Timer.builder("moemesh.kvcache.restore").tags(model)
                    .description("Reading one block for Get or Attend from whichever tier holds it (SSD reads CRC-check "
                            + "the record; a promotion to DRAM included); misses included").register(registry));
            tier(registry, m, true);
            tier(registry, m, false);
            FunctionCounter.builder("moemesh.kvcache.demotions", m, x -> x.store().stats().demotions()).tags(model)
                    .description("Blocks moved from DRAM down to the lower tier").register(registry);
            FunctionCounter.builder("moemesh.kvcache.promotions", m, x -> x.store().stats().promotions()).tags(model)
                    .description("Blocks moved up to DRAM by a hit in the lower tier").register(registry);
            FunctionCounter.builder("moemesh.kvcache.declined", m, x -> x.store().stats().declined()).tags(model)
                    .description("Puts the admission policy declined").register(registry);
            Gauge.builder("moemesh.kvcache.ssd.disk.bytes", m, x -> x.ssd().diskBytes()).tags(model).baseUnit("bytes")
                    .description("Bytes of the SSD tier's segment files, dead space awaiting compaction included")
                    .register(registry);
        }
    }

    private static void tier(MeterRegistry registry, ServedModel m, boolean dram) {
        String name = dram ? "dram" : m.store().lower().kind().name().toLowerCase(Locale.ROOT);
        Tags tags = Tags.of("model", m.name(), "tier", name);
        ToDoubleFunction<ServedModel> hits = x -> stats(x, dram).hits();
        FunctionCounter.builder("moemesh.kvcache.tier.hits", m, hits).tags(tags)
                .description("Block reads that found the block in this tier").register(registry);
        FunctionCounter.builder("moemesh.kvcache.tier.misses", m, x -> stats(x, dram).misses()).tags(tags)
                .description("Block reads this tier could not serve (checksum failures included); a DRAM miss then "
                        + "reads the lower tier").register(registry);
        FunctionCounter.builder("moemesh.kvcache.tier.read", m, x -> stats(x, dram).bytesRead()).tags(tags)
                .baseUnit("bytes").description("Bytes read from this tier to serve hits: a block's float32 bytes in "
                        + "DRAM, its whole record on SSD (header and payload, as stored)").register(registry);
        FunctionCounter.builder("moemesh.kvcache.tier.written", m, x -> stats(x, dram).bytesWritten()).tags(tags)
                .baseUnit("bytes").description("Bytes written into this tier (puts, demotions, promotions, "
                        + "compaction), counted as the read bytes are: whole records on SSD").register(registry);
        FunctionCounter.builder("moemesh.kvcache.tier.evictions", m, x -> stats(x, dram).evictions()).tags(tags)
                .description("Blocks this tier gave up to make room (DRAM: demotions included)").register(registry);
        FunctionCounter.builder("moemesh.kvcache.tier.checksum.failures", m, x -> stats(x, dram).checksumFailures())
                .tags(tags).description("Stored records whose CRC32C did not match (on read or at the index rebuild), "
                        + "dropped and never served").register(registry);
        Gauge.builder("moemesh.kvcache.tier.blocks", m, x -> stats(x, dram).blocks()).tags(tags)
                .description("Blocks resident in this tier now").register(registry);
        Gauge.builder("moemesh.kvcache.tier.used.bytes", m, x -> stats(x, dram).usedBytes()).tags(tags)
                .baseUnit("bytes").description("Bytes the resident blocks occupy (SSD: record headers included)")
                .register(registry);
        Gauge.builder("moemesh.kvcache.tier.capacity.bytes", m, x -> stats(x, dram).capacityBytes()).tags(tags)
                .baseUnit("bytes").description("This tier's byte budget").register(registry);
    }

    private static TierStats stats(ServedModel m, boolean dram) {
        return dram ? m.store().dram().stats() : m.store().lower().stats();
    }

    /** One block stored by a Put, {@code nanos} from its last byte to the store's answer. */
    public void stored(ServedModel m, long nanos) {
        store.get(m.name()).record(nanos, TimeUnit.NANOSECONDS);
    }

    /** One block read for Get or Attend (hit or miss). */
    public void restored(ServedModel m, long nanos) {
        restore.get(m.name()).record(nanos, TimeUnit.NANOSECONDS);
    }
}
