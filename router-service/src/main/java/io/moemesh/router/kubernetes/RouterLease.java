package io.moemesh.router.kubernetes;

import com.google.gson.JsonObject;
import io.kubernetes.client.openapi.ApiClient;
import io.kubernetes.client.openapi.ApiException;
import io.kubernetes.client.openapi.apis.CoordinationV1Api;
import java.time.Duration;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Objects;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The placement lease: a {@code coordination.k8s.io/v1} Lease that only one router holds at a time, so two routers
 * that overlap (the old pod's container still running on a node whose kubelet died while its replacement starts) do
 * not both switch the expert-services' placements: each would otherwise lift its epoch above the other's, and each
 * COMMIT would drain the epoch the other's gateways dispatch under. Only the holder places ({@code EpochFloor} holds
 * the others) and is ready.
 *
 * <p>As Kubernetes' own leader election (client-go's): the holder renews the Lease's renewTime every
 * {@code duration / 3}, and after a failed try (no answer within the call timeout, an error) tries again every
 * {@code duration / 15} (1 s for 15 s) until one gets through: one slow answer must not cost the holder the Lease,
 * as each loss stops placement and ends every gateway stream. Another router takes it over only once it has
 * seen the same record (holder, renewTime, transitions) unchanged for a whole {@code duration}, measured on its own
 * monotonic clock (no clock needs to agree with another), or at once when the holder released it (empty holder). Every write is at the resourceVersion read,
 * so of two routers taking it over at once one gets 409 Conflict and stays out. A holder that has not renewed it
 * for {@code 2/3 × duration} (the API server unreachable; each call is bounded by the client's call timeout, which
 * must be well under a third of the duration) gives it up, checked every twelfth of the duration on a thread of its
 * own, so at least a quarter of the duration before any other router may take it (counted from the start of its last
 * successful renewal, which is before the API server wrote it, and so before any other router saw it); it keeps
 * trying, and finding itself still the holder renews it again ({@link Listener#acquired} with {@code resumed}). The
 * Lease is created when missing. {@link #close} releases it (empty holder), so the next router takes over without waiting for
 * the duration.
 *
 * <p>The {@link Listener} ({@link #listen}) is called on the lease's own thread, never once {@link #close} began (a
 * renewal still in flight then does not report the Lease taken). Errors are logged once per distinct message.
 *
 * <p>The Lease is read and written as a plain JSON tree ({@link RawApi}), not through the client's generated models:
 * a member a newer Kubernetes adds neither fails the read (which would cost the holder the Lease at each renewal) nor
 * gets dropped by the write, which changes only the spec members below.
 */
public final class RouterLease implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(RouterLease.class);

    /** Told when this router becomes the holder and when it stops being it. */
    public interface Listener {
        /**
         * @param resumed whether this router finds itself the holder still (it gave the Lease up without anyone
         *                taking it over since: what it placed is still the last placement of the holder)
         */
        void acquired(boolean resumed);

        void lost(String why);
    }

    /**
     * A MicroTime (spec.renewTime, spec.acquireTime) as the API server parses it: RFC 3339 with exactly six fraction
     * digits, {@code 2006-01-02T15:04:05.000000Z07:00} (k8s.io/apimachinery/pkg/apis/meta/v1/micro_time.go), in UTC.
     */
    private static final DateTimeFormatter MICRO_TIME = DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'");

    private final RawApi raw;
    private final CoordinationV1Api api;
    private final String namespace;
    private final String name;
    private final String identity;
    private final Duration duration;
    private final Supplier<ScheduledExecutorService> timers;
    private final LongSupplier nanoClock;
    private volatile Listener listener = new Listener() {
        @Override
        public void acquired(boolean resumed) {
        }

        @Override
        public void lost(String why) {
        }
    };
    /** Guarded by this. */
    private ScheduledExecutorService timer;
    private volatile boolean held;
    /** From {@link #close} to the next {@link #start}: nothing is reported taken. Guarded by this. */
    private boolean closing;
    /** The record last seen (holder, renewTime, transitions) and when it was first seen so (timer thread). */
    private String observed;
    private long observedAt;
    /** When this router last began a write of the Lease that made it its holder; guarded by this. */
    private long renewedAt;
    private volatile String lastError;

    /**
     * @param identity who this router is in {@code spec.holderIdentity}: unique per process
     * @param duration how long a holder that stopped renewing keeps it ({@code spec.leaseDurationSeconds}); >= 3s
     * @param timers   a new executor for each {@link #start}, with two threads: renewals, and the check that gives
     *                 the lease up while a renewal hangs
     */
    public RouterLease(ApiClient client, String namespace, String name, String identity, Duration duration,
                       Supplier<ScheduledExecutorService> timers, LongSupplier nanoClock) {
        if (duration.compareTo(Duration.ofSeconds(3)) < 0) {
            throw new IllegalArgumentException("lease duration must be >= 3s, got " + duration);
        }
        this.raw = new RawApi(client);
        this.api = new CoordinationV1Api(client);
        this.namespace = Objects.requireNonNull(namespace, "namespace");
        this.name = Objects.requireNonNull(name, "name");
        this.identity = Objects.requireNonNull(identity, "identity");
        this.duration = duration;
        this.timers = timers;
        this.nanoClock = nanoClock;
    }

    /** Who is told (call before {@link #start}). */
    public void listen(Listener l) {
        this.listener = Objects.requireNonNull(l, "listener");
    }

    /** Tries to take the Lease now and every {@code duration / 3}; after a {@link #close}, afresh. */
    public synchronized void start() {
        if (timer != null) {
            return;
        }
        timer = timers.get();
        closing = false;
        observed = null;
        long period = duration.toNanos() / 3;
        schedule(timer, 0);
        timer.scheduleAtFixedRate(this::checkRenewed, period / 4, period / 4, TimeUnit.NANOSECONDS);
        log.info("placement lease {}/{}: taking it as {} (duration {})", namespace, name, identity, duration);
    }

    /** Whether this router holds the Lease now. */
    public boolean held() {
        return held;
    }

    public String identity() {
        return identity;
    }

    /** The next try on {@code t}, unless it was shut down meanwhile. */
    private static void schedule(ScheduledExecutorService t, Runnable task, long delayNanos) {
        try {
            t.schedule(task, delayNanos, TimeUnit.NANOSECONDS);
        } catch (RejectedExecutionException e) {
            // closed: no more tries
        }
    }

    private void schedule(ScheduledExecutorService t, long delayNanos) {
        schedule(t, () -> {
            boolean ok = tick();
            // A failed try is repeated soon: a holder has only 2/3 × duration from its last renewal.
            schedule(t, ok ? duration.toNanos() / 3 : duration.toNanos() / 15);
        }, delayNanos);
    }

    /** One try to renew or take the Lease; @return whether it got an answer it could act on */
    private boolean tick() {
        long now = nanoClock.getAsLong();
        boolean ok = false;
        try {
            JsonObject lease = read();
            if (lease == null) {
                create(now);
            } else {
                JsonObject spec = spec(lease);
                String holder = holder(spec);
                String record = holder + " " + LenientJson.string(spec, "renewTime", "spec") + " "
                        + LenientJson.integer(spec, "leaseTransitions", "spec");
                if (!record.equals(observed)) {
                    observed = record;
                    observedAt = now;
                }
                if (identity.equals(holder)) {
                    // Still ours: nobody held it since this router last did, even if it gave it up meanwhile.
                    write(lease, false, now);
                } else if (held) {
                    lose("router " + holder + " holds it now");
                } else if (holder.isEmpty() || now - observedAt >= durationOf(spec).toNanos()) {
                    if (!holder.isEmpty()) {
                        log.warn("placement lease {}/{}: router {} has not renewed it for {}: taking it over",
                                namespace, name, holder, durationOf(spec));
                    }
                    write(lease, true, now);
                }
            }
            lastError = null;
            ok = true;
        } catch (ApiException e) {
            failed(e.getCode() == 409 ? "another router wrote it first (409 Conflict)" : describe(e));
        } catch (RuntimeException e) {
            failed(e.getClass().getSimpleName() + ": " + e.getMessage());
        }
        checkRenewed();
        return ok;
    }

    /** Gives the lease up once it has not been renewed for 2/3 of its duration (also while a renewal hangs). */
    private synchronized void checkRenewed() {
        if (held && nanoClock.getAsLong() - renewedAt >= duration.toNanos() * 2 / 3) {
            lose("not renewed for " + Duration.ofNanos(duration.toNanos() * 2 / 3) + " (" + lastError + "): another"
                    + " router may take it over soon");
        }
    }

    private Duration durationOf(JsonObject spec) {
        Integer s = LenientJson.integer(spec, "leaseDurationSeconds", "spec");
        return s == null || s < 1 ? duration : Duration.ofSeconds(s);
    }

    /** The Lease's spec (a new one, in it, when it has none). */
    private static JsonObject spec(JsonObject lease) {
        JsonObject spec = LenientJson.object(lease, "spec", "Lease");
        if (spec == null) {
            spec = new JsonObject();
            lease.add("spec", spec);
        }
        return spec;
    }

    private static String holder(JsonObject spec) {
        String holder = LenientJson.string(spec, "holderIdentity", "spec");
        return holder == null ? "" : holder;
    }

    private String path() {
        return "/apis/coordination.k8s.io/v1/namespaces/" + raw.escape(namespace) + "/leases";
    }

    /** The Lease (without metadata.managedFields: it is written back from this), or null when there is none. */
    private JsonObject read() throws ApiException {
        try {
            return RawApi.withoutManagedFields(raw.send(api.readNamespacedLease(name, namespace).buildCall(null)));
        } catch (ApiException e) {
            if (e.getCode() == 404) {
                return null;
            }
            throw e;
        }
    }

    private void create(long now) throws ApiException {
        String t = MICRO_TIME.format(OffsetDateTime.now(ZoneOffset.UTC));
        JsonObject meta = new JsonObject();
        meta.addProperty("name", name);
        meta.addProperty("namespace", namespace);
        JsonObject spec = new JsonObject();
        spec.addProperty("holderIdentity", identity);
        spec.addProperty("leaseDurationSeconds", seconds());
        spec.addProperty("acquireTime", t);
        spec.addProperty("renewTime", t);
        spec.addProperty("leaseTransitions", 0);
        JsonObject lease = new JsonObject();
        lease.addProperty("apiVersion", "coordination.k8s.io/v1");
        lease.addProperty("kind", "Lease");
        lease.add("metadata", meta);
        lease.add("spec", spec);
        raw.send(raw.write("POST", path(), lease));
        renewed(now, false);
    }

    /** Renews it (as its holder) or takes it over, at the resourceVersion read: 409 when another wrote it first. */
    private void write(JsonObject lease, boolean takeOver, long now) throws ApiException {
        String t = MICRO_TIME.format(OffsetDateTime.now(ZoneOffset.UTC));
        JsonObject spec = spec(lease);
        spec.addProperty("holderIdentity", identity);
        spec.addProperty("leaseDurationSeconds", seconds());
        spec.addProperty("renewTime", t);
        if (takeOver) {
            Integer transitions = LenientJson.integer(spec, "leaseTransitions", "spec");
            spec.addProperty("acquireTime", t);
            spec.addProperty("leaseTransitions", transitions == null ? 1 : transitions + 1);
        }
        replace(lease);
        renewed(now, !takeOver);
    }

    /** PUT of the Lease as read (its resourceVersion with it), its unknown members kept. */
    private void replace(JsonObject lease) throws ApiException {
        lease.addProperty("apiVersion", "coordination.k8s.io/v1");
        lease.addProperty("kind", "Lease");
        raw.send(raw.write("PUT", path() + "/" + raw.escape(name), lease));
    }

    /** @param stillOurs whether the Lease named this router before this write (a renewal, not a take-over) */
    private synchronized void renewed(long now, boolean stillOurs) {
        renewedAt = now;
        if (!held && !closing) {
            held = true;
            log.info("placement lease {}/{} {} by this router ({}): it places", namespace, name,
                    stillOurs ? "renewed again" : "taken", identity);
            listener.acquired(stillOurs);
        }
    }

    private synchronized void lose(String why) {
        held = false;
        log.warn("placement lease {}/{} lost: {}; this router stops placing and is not ready", namespace, name, why);
        listener.lost(why);
    }

    private int seconds() {
        return (int) Math.max(1, duration.toSeconds());
    }

    private void failed(String message) {
        if (!message.equals(lastError)) {
            lastError = message;
            log.warn("placement lease {}/{}: {} (tried again in {})", namespace, name, message,
                    Duration.ofNanos(duration.toNanos() / 15));
        }
    }

    private String describe(ApiException e) {
        return switch (e.getCode()) {
            case 0 -> "no answer: " + e.getMessage();
            case 403 -> "HTTP 403 Forbidden: the router's Role must allow get, create and update on leases "
                    + "(apiGroups [coordination.k8s.io]; the chart's router Role does)";
            default -> "HTTP " + e.getCode() + ": " + e.getResponseBody();
        };
    }

    /**
     * Stops renewing; when the Lease names this router it is released (empty holder, best effort), so the next
     * router takes it over at once. A renewal still in flight is not reported ({@link Listener#acquired}).
     */
    @Override
    public void close() {
        ScheduledExecutorService t;
        synchronized (this) {
            t = timer;
            timer = null;
            closing = true;
        }
        if (t == null) {
            return;
        }
        t.shutdownNow();
        try {
            t.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        // Also when not held: a try that was in flight may have written this router's name.
        held = false;
        try {
            JsonObject lease = read();
            if (lease != null && identity.equals(holder(spec(lease)))) {
                spec(lease).remove("holderIdentity");
                spec(lease).addProperty("leaseDurationSeconds", 1);
                replace(lease);
                log.info("placement lease {}/{} released", namespace, name);
            }
        } catch (ApiException | RuntimeException e) {
            log.warn("placement lease {}/{} not released ({}): another router takes it over once it expires",
                    namespace, name, e instanceof ApiException a ? describe(a) : e.getMessage());
        }
    }
}
