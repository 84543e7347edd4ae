package io.moemesh.router.discovery;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
import io.moemesh.proto.router.v1.Placement;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes every published placement to the {@code placement.json} key of the router's ConfigMap (Kubernetes mode), as
 * compact protobuf JSON, so a gateway can mount it as its placement file. The router is the one writer (one replica,
 * Recreate strategy); should a second one run, it loses on the resourceVersion: every write replaces the ConfigMap at
 * the resourceVersion just read, and a 409 Conflict is logged as an error, the ConfigMap read again, and the write
 * retried only while this router's epoch is still newer than the one found there: never a blind overwrite.
 *
 * <p>A placement larger than a ConfigMap may hold ({@value #LIMIT_BYTES} bytes of data) is not written: an error log
 * names the size and the limit and {@link #oversize()} counts it; the ConfigMap keeps the last placement that fit and
 * gateways that follow the router's WatchPlacement stream still get every epoch.
 */
public final class ConfigMapPublisher implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ConfigMapPublisher.class);
    /** The API server's limit on a ConfigMap's data (1 MiB). */
    public static final int LIMIT_BYTES = 1024 * 1024;
    /** The key the placement is written to. */
    public static final String KEY = "placement.json";
    /** Attempts of one write when other writers keep changing the ConfigMap. */
    static final int ATTEMPTS = 3;

    /** What became of one write. */
    public enum Result { WRITTEN, OVERSIZE, SUPERSEDED, FAILED }

    private final PlacementConfigMap configMap;
    private final String name;
    private final ExecutorService writer;
    private final AtomicReference<Placement> pending = new AtomicReference<>();
    private final AtomicLong writes = new AtomicLong();
    private final AtomicLong failures = new AtomicLong();
    private final AtomicLong conflicts = new AtomicLong();
    private final AtomicLong oversize = new AtomicLong();

    /**
     * @param name   the ConfigMap's namespace/name, for the logs
     * @param writer one thread: the writes of {@link #offer} run there, the latest placement only
     */
    public ConfigMapPublisher(PlacementConfigMap configMap, String name, ExecutorService writer) {
        this.configMap = configMap;
        this.name = name;
        this.writer = writer;
    }

    /** Writes {@code p} in the background; a newer placement offered before the write starts replaces it. */
    public void offer(Placement p) {
        pending.set(p);
        try {
            writer.execute(() -> {
                Placement next = pending.getAndSet(null);
                if (next != null) {
                    write(next);
                }
            });
        } catch (RejectedExecutionException e) {
            log.debug("ConfigMap {} not written: shutting down", name);
        }
    }

    /** Writes {@code p} now, on the caller's thread. */
    public Result write(Placement p) {
        String json;
        try {
            json = JsonFormat.printer().omittingInsignificantWhitespace().print(p);
        } catch (InvalidProtocolBufferException e) {
            throw new IllegalStateException("placement epoch " + p.getEpoch() + " has no JSON form", e);
        }
        int bytes = json.getBytes(StandardCharsets.UTF_8).length;
        if (bytes > LIMIT_BYTES) {
            oversize.incrementAndGet();
            log.error("placement epoch {} is {} bytes of compact JSON, more than a ConfigMap holds ({} bytes): not "
                    + "written to ConfigMap {} (it keeps the last placement that fit); gateways that follow the router's "
                    + "WatchPlacement stream get it", p.getEpoch(), bytes, LIMIT_BYTES, name);
            return Result.OVERSIZE;
        }
        try {
            for (int attempt = 1; attempt <= ATTEMPTS; attempt++) {
                PlacementConfigMap.Stored stored = configMap.read();
                if (attempt > 1) {
                    long theirs = epochOf(stored.placementJson());
                    if (Long.compareUnsigned(theirs, p.getEpoch()) >= 0) {
                        log.error("ConfigMap {} now holds placement epoch {}, written by another writer, not older than "
                                + "this router's epoch {}: not overwritten (is a second router running?)", name, theirs,
                                p.getEpoch());
                        failures.incrementAndGet();
                        return Result.SUPERSEDED;
                    }
                }
                try {
                    configMap.replace(json, stored.resourceVersion());
                    writes.incrementAndGet();
                    log.info("placement epoch {} written to ConfigMap {} ({} bytes)", p.getEpoch(), name, bytes);
                    return Result.WRITTEN;
                } catch (PlacementConfigMap.ConflictException e) {
                    conflicts.incrementAndGet();
                    log.error("ConfigMap {} was changed by another writer since it was read at resourceVersion {} "
                            + "(409 Conflict; is a second router running?): reading it again before writing placement "
                            + "epoch {}", name, stored.resourceVersion(), p.getEpoch());
                }
            }
            log.error("placement epoch {} not written to ConfigMap {}: {} conflicting writes in a row", p.getEpoch(),
                    name, ATTEMPTS);
        } catch (RuntimeException e) {
            log.error("placement epoch {} not written to ConfigMap {}: {}", p.getEpoch(), name, e.getMessage());
        }
        failures.incrementAndGet();
        return Result.FAILED;
    }

    /** The epoch of a placement.json value; 0 when absent or not a placement. */
    static long epochOf(String json) {
        if (json == null || json.isBlank()) {
            return 0;
        }
        try {
            Placement.Builder b = Placement.newBuilder();
            JsonFormat.parser().ignoringUnknownFields().merge(json, b);
            return b.getEpoch();
        } catch (InvalidProtocolBufferException e) {
            return 0;
        }
    }

    /** Placements written. */
    public long writes() {
        return writes.get();
    }

    /** Placements not written: API errors, conflicts that did not resolve, or a newer epoch found there. */
    public long failures() {
        return failures.get();
    }

    /** 409 Conflicts met (each followed by a fresh read). */
    public long conflicts() {
        return conflicts.get();
    }

    /** Placements too large for a ConfigMap, not written. */
    public long oversize() {
        return oversize.get();
    }

    @Override
    public void close() {
        writer.shutdownNow();
    }
}
