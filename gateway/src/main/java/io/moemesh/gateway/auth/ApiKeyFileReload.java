package io.moemesh.gateway.auth;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps the {@link ApiKeys} of a key file ({@code moemesh.gateway.api-keys-file}) in step with the file while the
 * gateway runs: every {@code moemesh.gateway.api-keys-reload-period} the file is read, and when its content differs
 * from the content now served, the keys are loaded from it again (with the inline keys, as at startup) and replace
 * the served ones at once. On Kubernetes the file is a Secret volume's key, which the kubelet updates in place by
 * swapping the volume's {@code ..data} symlink to a new directory (the same mechanism the services' TLS files rely on:
 * {@code MeshCredentials} re-reads them every {@code tls.reload-period}); a revoked key is then refused, and a new one
 * accepted, by every running replica within the kubelet's sync plus this period, without a restart.
 *
 * <p>The content is compared, not the modification time: a file rewritten within the file system's timestamp tick
 * keeps its time. Only the content's SHA-256 is kept, never the content (it holds the keys, see {@link ApiKeys}).
 *
 * <p>A file that cannot be read (the Secret's key removed, a permission) or that startup would refuse (a malformed
 * line, no key left, a key of two tenants) changes nothing: the last good keys stay served, neither opening the
 * gateway to everyone nor locking every client out, and the failure is logged (once per distinct failure; never a key)
 * and counted ({@link #failures()}, {@code moemesh_gateway_api_keys_reload_failures_total}) every period it lasts.
 */
public final class ApiKeyFileReload implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ApiKeyFileReload.class);
    /** Shorter periods would only re-read a file that the kubelet itself updates about once a minute. */
    public static final Duration MIN_PERIOD = Duration.ofSeconds(1);

    private final ApiKeys keys;
    private final Path file;
    private final String inline;
    private final AtomicLong reloads = new AtomicLong();
    private final AtomicLong failures = new AtomicLong();
    private final ScheduledExecutorService reloader;
    /** SHA-256 of the file content the served keys came from; null when it could not be read at startup. */
    private byte[] served;
    /** The last failure logged, so that a failure lasting many periods is logged once. */
    private String lastFailure;

    private ApiKeyFileReload(ApiKeys keys, Path file, String inline, byte[] served, Duration period) {
        this.keys = keys;
        this.file = file;
        this.inline = inline;
        this.served = served;
        if (file == null || period.isZero()) {
            reloader = null;
        } else {
            reloader = Executors.newSingleThreadScheduledExecutor(Thread.ofPlatform().name("moemesh-api-keys-reload")
                    .daemon().factory());
            long millis = period.toMillis();
            reloader.scheduleWithFixedDelay(this::reloadIfChanged, millis, millis, TimeUnit.MILLISECONDS);
        }
    }

    /**
     * Loads the keys as {@link ApiKeys#load} does (same refusals at startup) and, with a key file and a period other
     * than 0, re-reads the file every {@code period} on a daemon thread until {@link #close()}.
     *
     * @param period 0 = the file is read once, at startup; else at least {@link #MIN_PERIOD}
     * @throws IllegalArgumentException as {@link ApiKeys#load}, or naming {@code moemesh.gateway.api-keys-reload-period}
     *                                  when {@code period} is negative or below {@link #MIN_PERIOD}
     */
    public static ApiKeyFileReload start(Path file, String inline, Duration period) {
        checkPeriod(period);
        // The content's digest before the keys are loaded: a change between the two reads is then seen as a change
        // at the first period (and loaded again), never taken for what is served.
        byte[] before = file == null ? null : digestOrNull(file);
        ApiKeys keys = ApiKeys.load(file, inline);
        return new ApiKeyFileReload(keys, file, inline, before, period);
    }

    /** @throws IllegalArgumentException naming the property when {@code period} is not 0 nor at least 1 s */
    public static void checkPeriod(Duration period) {
        if (period == null || period.isNegative() || !period.isZero() && period.compareTo(MIN_PERIOD) < 0) {
            throw new IllegalArgumentException("moemesh.gateway.api-keys-reload-period must be 0 (the key file is "
                    + "read once, at startup) or at least 1s, got " + period);
        }
    }

    /** The served keys: the same object for the gateway's life, its keys replaced by each reload. */
    public ApiKeys keys() {
        return keys;
    }

    /** Reloads that replaced the served keys (the file's content changed and was valid). */
    public long reloads() {
        return reloads.get();
    }

    /** Periods in which the file could not be read or held keys startup would refuse: the last good keys stayed. */
    public long failures() {
        return failures.get();
    }

    /** One period's work: re-reads the file, and replaces the served keys when its content changed and is valid. */
    synchronized void reloadIfChanged() {
        try {
            byte[] now = digest(Files.readAllBytes(file));
            if (served != null && MessageDigest.isEqual(now, served)) {
                return;
            }
            // Loaded from the file again rather than from the bytes just read: load's own read is what startup does,
            // so the same file is refused for the same reasons. Should the file change in between, the next period
            // sees a content that differs from `now` and loads again.
            ApiKeys fresh = ApiKeys.load(file, inline);
            keys.replaceWith(fresh);
            served = now;
            lastFailure = null;
            reloads.incrementAndGet();
            log.info("API key file {} changed: its keys now serve", file);
        } catch (IOException | UncheckedIOException | IllegalArgumentException e) {
            failures.incrementAndGet();
            String why = e instanceof IOException io ? "not readable (" + io + ")" : e.getMessage();
            if (!why.equals(lastFailure)) {
                lastFailure = why;
                // The messages name the file, the line or the tenants, never a key (ApiKeys).
                log.warn("API key file {} not reloaded, the keys loaded before stay in use: {}", file, why);
            }
        } catch (RuntimeException e) {
            // Anything else must not end the periodic re-reads (a scheduled task that throws is never run again).
            failures.incrementAndGet();
            log.warn("API key file {} not reloaded, the keys loaded before stay in use", file, e);
        }
    }

    private static byte[] digestOrNull(Path file) {
        try {
            return digest(Files.readAllBytes(file));
        } catch (IOException e) {
            return null;
        }
    }

    private static byte[] digest(byte[] content) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(content);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Stops the re-reads; the keys served stay as they are. */
    @Override
    public void close() {
        if (reloader != null) {
            reloader.shutdownNow();
        }
    }
}
