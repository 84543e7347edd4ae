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
 * the gRPC server: compaction copies live records of mostly-dead segments while reads and puts go on.
 *
 * <p>On shutdown it stops after the gRPC server (so the server goes NOT_SERVING and drains first, as the service
 * documents, without waiting for a compaction) and before {@link ServedModels#close()} closes the tiers. It stops a
 * compaction in progress cooperatively ({@code SsdTier.compact(stopRequested)} checks the flag between records),
 * never by interrupting the thread: an interrupt during a file read closes the channel it reads through.
 */
final class KvCacheBackground implements SmartLifecycle {
    private static final Logger log = LoggerFactory.getLogger(KvCacheBackground.class);

    private final KvCacheProperties props;
    private final ServedModels models;
    private volatile ScheduledExecutorService timer;
    /** Set by {@link #stop()}: a compaction in progress ends at its next record, and no other model's begins. */
    private volatile boolean stopping;

    KvCacheBackground(KvCacheProperties props, ServedModels models) {
        this.props = props;
        this.models = models;
    }

    @Override
    public void start() {
        stopping = false;
        ScheduledExecutorService t = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().name("kvcache-compaction").daemon().factory());
        timer = t;
        if (!props.compactionPeriod().isZero()) {
            long every = props.compactionPeriod().toNanos();
            t.scheduleWithFixedDelay(this::compact, every, every, TimeUnit.NANOSECONDS);
        }
    }

    private void compact() {
        for (ServedModel m : models.all()) {
            if (stopping) {
                return;
            }
            try {
                CompactionResult r = m.ssd().compact(() -> stopping);
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
            stopping = true;
            t.shutdown();
            try {
                // A compaction ends within one record's copy; no shutdownNow (see the class comment). Should the
                // disk hang, closing the tiers waits for the compaction's lock anyway.
                if (!t.awaitTermination(30, TimeUnit.SECONDS)) {
                    log.warn("compaction did not stop within 30 s; the tiers close once it does");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    @Override
    public boolean isRunning() {
        return timer != null;
    }

    /**
     * Below the gRPC server's phase (Integer.MAX_VALUE - 2048): stopped after it (Spring stops the higher phases
     * first), started before it (harmless: the tiers are open by then).
     */
    @Override
    public int getPhase() {
        return Integer.MAX_VALUE - 4096;
    }
}
