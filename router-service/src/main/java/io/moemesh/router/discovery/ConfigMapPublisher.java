package io.moemesh.router.discovery;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
import io.moemesh.proto.router.v1.Placement;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongConsumer;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes every published placement to the router's ConfigMap (Kubernetes mode) so a gateway can mount it as its
 * placement file: compact protobuf JSON under the {@code data} key {@value #KEY} while it fits the threshold, else its
 * gzip under the {@code binaryData} key {@value #GZIP_KEY}. The router is the one writer (one replica, Recreate
 * strategy); should a second one run, it loses on the resourceVersion: every write replaces the ConfigMap at the
 * resourceVersion just read, only while this router's epoch is newer than the one found there (in either form; the
 * same epoch on the first attempt: a restored epoch published again); a 409 Conflict is logged as an error, the
 * ConfigMap read again and the write retried under the same rule: never a blind overwrite.
 *
 * <p>Sizes (docs/kubernetes.md, "Placement size"): the API server refuses a ConfigMap whose data and binaryData
 * exceed {@value #LIMIT_BYTES} bytes, and binaryData travels base64-encoded in the API's JSON (4/3 of its bytes;
 * the API server counts the decoded bytes, so counting base64 is the conservative side). The threshold ({@code moemesh.router.discovery.config-map-gzip-threshold-bytes}, default
 * {@value #DEFAULT_GZIP_THRESHOLD_BYTES}: a quarter of the limit left for other keys and the object's metadata) bounds
 * what the placement may take, counted as stored: the JSON's UTF-8 bytes for the plain form, the base64 length of the
 * gzip for the gzip form. The plain form is preferred (readable with kubectl); the gzip form is written only past the
 * threshold, replacing the plain key in the same update (and vice versa), so exactly one form is there. A placement
 * whose gzip form exceeds the threshold too is not written: an error log names the sizes and {@link #oversize()}
 * counts it; the ConfigMap keeps the last placement that fit and gateways that follow the router's WatchPlacement
 * stream still get every epoch.
 *
 * <p>A write that fails for a while ({@link Result#FAILED}: no answer or a timeout, 5xx, 408, 429, conflicts that did
 * not resolve) is tried again on the writer thread after {@link #FIRST_RETRY}, doubling up to {@link #MAX_RETRY},
 * until it is written or a newer placement is offered (which is written instead: only the latest one is ever pending,
 * and an older one never replaces a newer one). Without it the ConfigMap would stay at an older epoch than the
 * instances serve until the next publication, and it is what a restarted router takes as its epoch floor and a
 * gateway starts from. A write the API server refuses for good ({@link Result#REFUSED}: 403 from a missing Role rule,
 * 404 for a deleted ConfigMap, which the router never creates, 422) would fail the same way every time: it is logged
 * once, naming the status and the rule or value to fix, and not tried again; the next epoch is.
 *
 * <p>Every epoch a read finds there is handed to {@link #onEpochSeen} (the router's epoch floor: a newer one than
 * this router's is one it must publish above, or the gateways that mount the ConfigMap ignore its epochs).
 * {@link #readStoredEpoch} reads it before the router's first placement, again after a pause while the API server
 * does not answer.
 *
 * <p>{@link #failures()} counts the placements given up without being written (refused, a newer epoch found there, or
 * a failed one overtaken by a newer placement before a retry wrote it), {@link #retries()} the failed attempts tried
 * again: a placement written on its second attempt counts one retry and no failure.
 */
public final class ConfigMapPublisher implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ConfigMapPublisher.class);
    /** The API server's limit on a ConfigMap's data (1 MiB). */
    public static final int LIMIT_BYTES = 1024 * 1024;
    /** The data key of the plain form (compact JSON). */
    public static final String KEY = "placement.json";
    /** The binaryData key of the gzip form (the gzip of the compact JSON), used past the threshold. */
    public static final String GZIP_KEY = "placement.json.gz";
    /** 768 KiB: the default threshold, leaving a quarter of {@link #LIMIT_BYTES} for other keys and metadata. */
    public static final int DEFAULT_GZIP_THRESHOLD_BYTES = 768 * 1024;
    /** Attempts of one write when other writers keep changing the ConfigMap. */
    static final int ATTEMPTS = 3;
    /** The pause before a failed write is tried again; it doubles with each failure in a row, up to MAX_RETRY. */
    public static final Duration FIRST_RETRY = Duration.ofSeconds(1);
    public static final Duration MAX_RETRY = Duration.ofSeconds(30);

    /** What became of one write. */
    public enum Result {
        WRITTEN,
        /** Too large for the threshold even gzipped: not written. */
        OVERSIZE,
        /** A newer epoch (or the same one, written by another writer) is there: not written. */
        SUPERSEDED,
        /** Failed for now (I/O, timeout, 5xx, 408, 429, conflicts that did not resolve): {@link #offer} retries it. */
        FAILED,
        /** Refused for good by the API server ({@link PlacementConfigMap.RefusedException}): not retried. */
        REFUSED
    }

    private final PlacementConfigMap configMap;
    private final String name;
    private final ScheduledExecutorService writer;
    private final int gzipThresholdBytes;
    /** The latest placement offered and not written yet (null: none); guarded by this. */
    private Placement pending;
    /** Whether {@link #pending} is a failed write waiting for its retry (then a newer offer gives it up); by this. */
    private boolean pendingFailed;
    /** Failed writes in a row (writer thread): the next retry's pause doubles with each. */
    private int failedInRow;
    private final AtomicLong writes = new AtomicLong();
    private final AtomicLong failures = new AtomicLong();
    private final AtomicLong retries = new AtomicLong();
    private final AtomicLong conflicts = new AtomicLong();
    private final AtomicLong oversize = new AtomicLong();
    private final AtomicLong gzipped = new AtomicLong();
    private volatile LongConsumer epochSeen = e -> { };

    /** With the default threshold, {@value #DEFAULT_GZIP_THRESHOLD_BYTES} bytes. */
    public ConfigMapPublisher(PlacementConfigMap configMap, String name, ScheduledExecutorService writer) {
        this(configMap, name, writer, DEFAULT_GZIP_THRESHOLD_BYTES);
    }

    /**
     * @param name               the ConfigMap's namespace/name, for the logs
     * @param writer             one thread: the writes of {@link #offer} and their retries run there, the latest
     *                           placement only
     * @param gzipThresholdBytes the most bytes the placement may take as stored: plain JSON up to it, else the gzip
     *                           form if its base64 length is within it, else nothing; in [1, {@value #LIMIT_BYTES}]
     */
    public ConfigMapPublisher(PlacementConfigMap configMap, String name, ScheduledExecutorService writer,
                              int gzipThresholdBytes) {
        if (gzipThresholdBytes < 1 || gzipThresholdBytes > LIMIT_BYTES) {
            throw new IllegalArgumentException("gzip threshold must be in [1, " + LIMIT_BYTES + "] bytes, got "
                    + gzipThresholdBytes);
        }
        this.configMap = configMap;
        this.name = name;
        this.writer = writer;
        this.gzipThresholdBytes = gzipThresholdBytes;
    }

    /** {@code listener} gets the epoch of every read of the ConfigMap (0: none there), on the writer thread. */
    public void onEpochSeen(LongConsumer listener) {
        this.epochSeen = listener;
    }

    /**
     * Reads the epoch the ConfigMap holds on the writer thread and hands it to {@code then} (0 when none), reading it
     * again after a pause ({@link #FIRST_RETRY} doubling up to {@link #MAX_RETRY}) while the API server does not
     * answer or fails: a router that lost its state folder and started while the API server was unreachable would
     * otherwise publish below the epoch the gateways hold. One the API server refuses for good (403, 404: a
     * {@link PlacementConfigMap.RefusedException}) is logged naming what to fix and handed on as 0: no gateway can
     * have read a newer epoch from a ConfigMap that is not there, and waiting would never end.
     */
    public void readStoredEpoch(LongConsumer then) {
        readStored(then, 0);
    }

    private void readStored(LongConsumer then, int failedInRow) {
        try {
            writer.execute(() -> {
                long epoch;
                try {
                    epoch = storedEpoch();
                } catch (PlacementConfigMap.RefusedException e) {
                    log.error("ConfigMap {} not read ({}): the first epoch goes above the instances' epochs and the "
                            + "gateways' only", name, e.getMessage());
                    then.accept(0);
                    return;
                } catch (RuntimeException e) {
                    long pause = pause(failedInRow + 1);
                    log.warn("ConfigMap {} not read ({}): nothing is placed until its epoch is known (a router without "
                            + "its state must not publish below it); reading it again in {} ms", name, e.getMessage(),
                            TimeUnit.NANOSECONDS.toMillis(pause));
                    writer.schedule(() -> readStored(then, failedInRow + 1), pause, TimeUnit.NANOSECONDS);
                    return;
                }
                log.info("ConfigMap {} holds placement epoch {}", name, epoch);
                then.accept(epoch);
            });
        } catch (RejectedExecutionException e) {
            log.debug("ConfigMap {} not read: shutting down", name);
        }
    }

    /** The pause after {@code failedInRow} failures: {@link #FIRST_RETRY} doubled with each, up to MAX_RETRY. */
    private static long pause(int failedInRow) {
        long pause = FIRST_RETRY.toNanos() << Math.min(failedInRow - 1, 30);
        return pause <= 0 ? MAX_RETRY.toNanos() : Math.min(pause, MAX_RETRY.toNanos());
    }

    /**
     * Writes {@code p} in the background, and again after a pause while the write fails; a newer placement offered
     * before the write starts (or while it waits to be retried) replaces it, an older one is dropped.
     */
    public void offer(Placement p) {
        synchronized (this) {
            if (pending != null && Long.compareUnsigned(pending.getEpoch(), p.getEpoch()) > 0) {
                return; // older than the one waiting: never written over it
            }
            if (pending != null && pendingFailed) {
                givenUp(pending, p);
            }
            pending = p;
            pendingFailed = false;
        }
        submit(0);
    }

    /** A failed placement will not be written: {@code newer} replaces it. */
    private void givenUp(Placement failed, Placement newer) {
        failures.incrementAndGet();
        log.warn("placement epoch {} not written to ConfigMap {}: epoch {} replaces it before a retry wrote it",
                failed.getEpoch(), name, newer.getEpoch());
    }

    private void submit(long delayNanos) {
        try {
            writer.schedule(this::writePending, delayNanos, TimeUnit.NANOSECONDS);
        } catch (RejectedExecutionException e) {
            log.debug("ConfigMap {} not written: shutting down", name);
        }
    }

    /** Writes the pending placement (writer thread); a failure puts it back, unless a newer one came, and retries. */
    private void writePending() {
        Placement next;
        synchronized (this) {
            next = pending;
            pending = null;
            pendingFailed = false;
        }
        if (next == null) {
            return;
        }
        if (write(next) != Result.FAILED) {
            failedInRow = 0; // written, or given up (refused, superseded, oversize): the next epoch starts afresh
            return;
        }
        failedInRow++;
        synchronized (this) {
            if (pending != null && Long.compareUnsigned(pending.getEpoch(), next.getEpoch()) >= 0) {
                // a newer placement was offered meanwhile; its own write is queued and supersedes this one
                givenUp(next, pending);
                return;
            }
            // (an older one offered meanwhile is dropped: never written over this one)
            pending = next;
            pendingFailed = true;
        }
        retries.incrementAndGet();
        long pause = pause(failedInRow);
        log.warn("placement epoch {} is tried again on ConfigMap {} in {} ms", next.getEpoch(), name,
                TimeUnit.NANOSECONDS.toMillis(pause));
        submit(pause);
    }

    /** Writes {@code p} now, on the caller's thread. */
    public Result write(Placement p) {
        String json;
        try {
            json = JsonFormat.printer().omittingInsignificantWhitespace().print(p);
        } catch (InvalidProtocolBufferException e) {
            throw new IllegalStateException("placement epoch " + p.getEpoch() + " has no JSON form", e);
        }
        int jsonBytes = json.getBytes(StandardCharsets.UTF_8).length;
        PlacementConfigMap.Content content;
        String form;
        if (jsonBytes <= gzipThresholdBytes) {
            content = PlacementConfigMap.Content.plain(json);
            form = jsonBytes + " bytes of JSON under " + KEY;
        } else {
            byte[] gz = gzip(json);
            long stored = base64Length(gz.length);
            if (stored > gzipThresholdBytes) {
                oversize.incrementAndGet();
                log.error("placement epoch {} is {} bytes of compact JSON and {} bytes gzipped ({} in base64), more "
                        + "than the {} bytes a placement may take in a ConfigMap (the API server's limit is {} bytes; "
                        + "moemesh.router.discovery.config-map-gzip-threshold-bytes): not written to ConfigMap {} (it "
                        + "keeps the last placement that fit); gateways that follow the router's WatchPlacement stream "
                        + "get it", p.getEpoch(), jsonBytes, gz.length, stored, gzipThresholdBytes, LIMIT_BYTES, name);
                return Result.OVERSIZE;
            }
            content = PlacementConfigMap.Content.gzipped(gz);
            form = jsonBytes + " bytes of JSON past the threshold of " + gzipThresholdBytes + ", gzipped to "
                    + gz.length + " bytes (" + stored + " in base64) under binaryData " + GZIP_KEY;
        }
        try {
            for (int attempt = 1; attempt <= ATTEMPTS; attempt++) {
                PlacementConfigMap.Stored stored = configMap.read();
                // A newer epoch there is never replaced (a stale or second router would otherwise roll every reader
                // back); the same epoch only by this router's own first attempt (a restored epoch published again).
                long theirs = epochOf(stored);
                seen(theirs);
                int order = Long.compareUnsigned(theirs, p.getEpoch());
                if (order > 0 || (order == 0 && attempt > 1)) {
                    log.error("ConfigMap {} holds placement epoch {}, written by another writer, not older than this "
                            + "router's epoch {}: not overwritten (is a second router running?)", name, theirs,
                            p.getEpoch());
                    failures.incrementAndGet();
                    return Result.SUPERSEDED;
                }
                try {
                    configMap.replace(content, stored.resourceVersion());
                    writes.incrementAndGet();
                    if (content.isGzip()) {
                        gzipped.incrementAndGet();
                    }
                    log.info("placement epoch {} written to ConfigMap {} ({})", p.getEpoch(), name, form);
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
        } catch (PlacementConfigMap.RefusedException e) {
            failures.incrementAndGet();
            log.error("placement epoch {} not written to ConfigMap {}, and not tried again (the next epoch is): {}",
                    p.getEpoch(), name, e.getMessage());
            return Result.REFUSED;
        } catch (RuntimeException e) {
            log.error("placement epoch {} not written to ConfigMap {}: {}", p.getEpoch(), name, e.getMessage());
        }
        return Result.FAILED;
    }

    /**
     * The epoch the ConfigMap holds now (0 when none): published by an earlier router, so a new one starts above it.
     *
     * @throws RuntimeException when the API server cannot be read
     */
    public long storedEpoch() {
        return epochOf(configMap.read());
    }

    /** The higher epoch of the two forms stored; 0 when neither is there or is a placement. */
    static long epochOf(PlacementConfigMap.Stored stored) {
        long plain = epochOf(stored.placementJson());
        if (stored.placementGzip() == null) {
            return plain;
        }
        String json;
        try {
            json = gunzip(stored.placementGzip());
        } catch (UncheckedIOException e) {
            return plain;
        }
        long gz = epochOf(json);
        return Long.compareUnsigned(plain, gz) >= 0 ? plain : gz;
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

    private void seen(long epoch) {
        try {
            epochSeen.accept(epoch);
        } catch (RuntimeException e) {
            log.warn("ConfigMap {}'s placement epoch {} could not be handed on: {}", name, epoch, e.getMessage());
        }
    }

    /** Bytes of {@code n} bytes in base64 (with padding), as binaryData travels in the API's JSON. */
    static long base64Length(long n) {
        return (n + 2) / 3 * 4;
    }

    /** The gzip of {@code json}'s UTF-8 bytes: what {@value #GZIP_KEY} holds. */
    public static byte[] gzip(String json) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (GZIPOutputStream gz = new GZIPOutputStream(out)) {
            gz.write(json.getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(e); // in memory: does not happen
        }
        return out.toByteArray();
    }

    /**
     * The JSON of a {@value #GZIP_KEY} value.
     *
     * @throws UncheckedIOException when it is not gzip
     */
    public static String gunzip(byte[] gzip) {
        try (GZIPInputStream in = new GZIPInputStream(new ByteArrayInputStream(gzip))) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Placements written. */
    public long writes() {
        return writes.get();
    }

    /**
     * Placements given up without being written: refused for good by the API server ({@link Result#REFUSED}), a
     * newer epoch found there ({@link Result#SUPERSEDED}), or a failed write overtaken by a newer placement before a
     * retry wrote it. Not the oversize ones ({@link #oversize()}), nor those still being retried.
     */
    public long failures() {
        return failures.get();
    }

    /** Failed writes tried again later ({@link Result#FAILED} from {@link #offer}'s writes). */
    public long retries() {
        return retries.get();
    }

    /** 409 Conflicts met (each followed by a fresh read). */
    public long conflicts() {
        return conflicts.get();
    }

    /** Placements written in the gzip form (counted in {@link #writes()} too). */
    public long gzipped() {
        return gzipped.get();
    }

    /** Placements too large for a ConfigMap even gzipped, not written. */
    public long oversize() {
        return oversize.get();
    }

    @Override
    public void close() {
        writer.shutdownNow();
    }
}
