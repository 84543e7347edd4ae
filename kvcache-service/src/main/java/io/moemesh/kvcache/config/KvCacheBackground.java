package io.moemesh.kvcache.config;

import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.tier.CompactionResult;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;

/**
 * Compaction of every model's SSD tier every {@code compaction-period} (off when 0), on one daemon thread, beside
 * the gRPC server: compaction copies live records of mostly-dead segments while reads and puts go on. Stops
 * before the server on shutdown (waiting for a compaction in progress), so the tiers close after it.
 */
final class KvCacheBackground implements SmartLifecycle {
    private static final Logger log = LoggerFactory.getLogger(KvCacheBackground.class);

    private final KvCacheProperties props;
    private final ServedModels models;
    private volatile ScheduledExecutorService timer;

    KvCacheBackground(KvCacheProperties props, ServedModels models) {
        this.props = props;
        this.models = models;
    }

    @Override
    public void start() {
        ScheduledExecutorService t = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().name("kvcache-compaction").daemon().factory());
        timer = t;
        if (!props.compactionPeriod().isZero()) {
            long every = props.compactionPeriod().toMillis();
            t.scheduleWithFixedDelay(this::compact, every, every, TimeUnit.MILLISECONDS);
        }
    }

    private void compact() {
        for (ServedModel m : models.all()) {
            try {
                CompactionResult r = m.ssd().compact();
                if (r.segmentsCompacted() > 0) {
                    log.info("model {}: compacted {} segments ({} live records moved, {} bytes reclaimed)", m.name(),
                            r.segmentsCompacted(), r.recordsMoved(), r.bytesReclaimed());
                }
            } catch (RuntimeException e) {
                log.warn("model {}: compaction failed: {}", m.name(), e.toString());
            }
        }
    }

    @Override
    public void stop() {
        ScheduledExecutorService t = timer;
        timer = null;
        if (t != null) {
            t.shutdown();
            try {
                if (!t.awaitTermination(30, TimeUnit.SECONDS)) {
                    t.shutdownNow();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                t.shutdownNow();
            }
        }
    }

    @Override
    public boolean isRunning() {
        return timer != null;
    }

    /** After the gRPC server (Integer.MAX_VALUE - 2048) on start, before it on stop. */
    @Override
    public int getPhase() {
        return Integer.MAX_VALUE - 1024;
    }
}
