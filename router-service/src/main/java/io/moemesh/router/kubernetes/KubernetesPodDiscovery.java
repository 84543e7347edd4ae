package io.moemesh.router.kubernetes;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.kubernetes.client.openapi.ApiClient;
import io.kubernetes.client.openapi.ApiException;
import io.kubernetes.client.openapi.apis.CoreV1Api;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.router.discovery.ExpertPod;
import io.moemesh.router.discovery.InstanceDiscovery;
import io.moemesh.router.discovery.LabelSelector;
import io.moemesh.router.discovery.PodSet;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import okhttp3.Call;
import okhttp3.Response;
import okhttp3.ResponseBody;
import okio.BufferedSource;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The expert-service pods of one namespace and label selector, from the Kubernetes API with the official client
 * ({@code io.kubernetes:client-java}): a list (the full state, also every resync period), then watches from the list's
 * resourceVersion until the resync period ends, their ADDED/MODIFIED/DELETED events applied as they come. A watch the
 * API server ends early without an error (e.g. it restarted) is opened again at once from the last resourceVersion
 * seen; one that ends with 410 Gone (that resourceVersion is too old) is followed by a new list at once. A pod that
 * goes must be seen going at once: a gateway dispatching to a terminating pod fails its requests.
 *
 * <p>Pods are read from the API server's JSON as a plain tree ({@link PodJson}), not through the client's generated
 * models, which refuse a whole list for one member they do not define: a newer Kubernetes's pods (every release adds
 * members) are read like any other. A pod whose members the router reads cannot be read (a wrong JSON type) is left
 * out, as if deleted, and logged once per pod and reason; the other pods are delivered as usual.
 *
 * <p>Errors (API down, 403, a watch that cannot be opened or breaks, an answer that is not JSON) are logged, once per
 * distinct message, and retried with a new list after a pause that starts at {@link #FIRST_BACKOFF} and doubles with
 * each failure in a row up to the resync period (so a router whose Role does not allow watch follows the pods by
 * listing every resync period): never a crash of the router. Runs on its own daemon thread.
 *
 * <p>{@link #close} ends it; {@link #start} after a close (a Spring context stopped and started again) follows the
 * pods afresh, from a new list, on a new thread, and delivers the ready set it finds even when it is the one delivered
 * before the close. A thread of the closed run that is still in an API call (a list ignores interrupts) delivers
 * nothing more when it returns.
 */
public final class KubernetesPodDiscovery implements InstanceDiscovery {
    private static final Logger log = LoggerFactory.getLogger(KubernetesPodDiscovery.class);
    /** The pause after a first failure; it doubles with each failure in a row, up to the resync period. */
    static final Duration FIRST_BACKOFF = Duration.ofSeconds(1);

    /** How a watch ended. */
    private enum WatchEnd {
        /** The server closed it early, after it had run a while or delivered events: resume it at once. */
        CLOSED,
        /** The resync period is over (or the discovery closed): list again. */
        RESYNC,
        /** 410 Gone: its resourceVersion is too old to resume from: list again at once. */
        GONE,
        /** It failed to open, broke, or ended with another error (or at once without an event): back off. */
        FAILED
    }

    private final RawApi raw;
    private final CoreV1Api api;
    private final String namespace;
    private final LabelSelector selector;
    private final Duration resync;
    private final int defaultPort;
    /** The current run (from {@link #start} to {@link #close}), or null. */
    private volatile Run run;
    private volatile int ready;
    private volatile int seen;
    private volatile boolean watching;
    private volatile Consumer<List<ExpertPod>> podsListener = pods -> { };
    private volatile Map<String, Integer> deliveredRestarts = Map.of();

    /**
     * @param client      the API client; its read timeout must exceed {@code resync} (a watch waits that long)
     * @param defaultPort the expert-service gRPC port when a pod declares no container port named {@code grpc}
     * @param resync      how often the pods are listed afresh (and how long each watch lasts)
     */
    public KubernetesPodDiscovery(ApiClient client, String namespace, LabelSelector selector, int defaultPort,
                                  Duration resync) {
        this.raw = new RawApi(client);
        this.api = new CoreV1Api(client);
        this.namespace = Objects.requireNonNull(namespace, "namespace");
        this.selector = selector;
        this.resync = resync;
        this.defaultPort = defaultPort;
    }

    /** Starts following the pods; after {@link #close}, afresh. A run still going is closed first. */
    @Override
    public synchronized void start(Consumer<List<Instance>> onChange) {
        log.info("discovering expert-service pods in namespace {} with labels {} (resync every {})", namespace,
                selector, resync);
        Run old = run;
        if (old != null) {
            old.close();
        }
        Run r = new Run(onChange);
        run = r;
        r.thread = Thread.ofPlatform().name("router-discovery").daemon().start(r::loop);
    }

    @Override
    public int ready() {
        return ready;
    }

    @Override
    public Map<String, Integer> restarts() {
        return deliveredRestarts;
    }

    @Override
    public int seen() {
        return seen;
    }

    /**
     * Also hands every pod known, as last seen, to {@code listener} after each list (every resync period) and each
     * watch event, on the discovery thread (the readiness gate's view of the pods: {@code PlacedGate}). Call before
     * {@link #start}.
     */
    public void onPods(Consumer<List<ExpertPod>> listener) {
        this.podsListener = Objects.requireNonNull(listener, "listener");
    }

    /** Whether the last watch opened (false: the discovery runs on the periodic list alone). */
    public boolean watching() {
        return watching;
    }

    /** One run of the discovery: its thread, its view of the pods and where its watch is. */
    private final class Run {
        private final Consumer<List<Instance>> onChange;
        private final PodSet pods = new PodSet(selector, defaultPort);
        private volatile boolean closed;
        private volatile Thread thread;
        /** The watch call in progress, cancelled by {@link #close}. */
        private volatile Call watch;
        private List<Instance> delivered;
        /** The reason last logged for an unreadable pod, by name: the rate limit of those log lines. */
        private final Map<String, String> unreadable = new HashMap<>();
        private String lastError;
        private boolean watchFailureLogged;
        /** Failures in a row (lists and watches): the next pause is FIRST_BACKOFF doubled that many times less one. */
        private int failures;
        /** The resourceVersion to resume a watch from: the list's, then each event's. */
        private String resourceVersion;

        Run(Consumer<List<Instance>> onChange) {
            this.onChange = onChange;
        }

        void loop() {
            while (!closed) {
                long listedAt = System.nanoTime();
                try {
                    JsonObject list = raw.send(api.listNamespacedPod(namespace).labelSelector(selector.toString())
                            .buildCall(null));
                    List<ExpertPod> all = new ArrayList<>();
                    List<String> names = new ArrayList<>();
                    for (JsonObject p : LenientJson.objects(list, "items", "PodList")) {
                        ExpertPod pod = read(p);
                        names.add(pod == null ? PodJson.name(p) : pod.name());
                        if (pod != null) {
                            all.add(pod);
                        }
                    }
                    unreadable.keySet().retainAll(names);
                    pods.replaceAll(all);
                    deliver();
                    resourceVersion = PodJson.resourceVersion(list);
                    lastError = null;
                } catch (ApiException | RuntimeException e) {
                    failed("listing the expert-service pods failed", e);
                    backOff();
                    continue;
                }
                WatchEnd end;
                do {
                    long left = resync.toNanos() - (System.nanoTime() - listedAt);
                    end = left < TimeUnit.SECONDS.toNanos(1) || closed ? WatchEnd.RESYNC : watch(left);
                } while (end == WatchEnd.CLOSED);
                if (end == WatchEnd.FAILED) {
                    backOff();
                } else {
                    failures = 0;
                }
            }
        }

        /** One watch from {@link #resourceVersion}, at most {@code nanos} long. */
        private WatchEnd watch(long nanos) {
            int seconds = (int) Math.max(1, TimeUnit.NANOSECONDS.toSeconds(nanos));
            long openedAt = System.nanoTime();
            boolean events = false;
            try {
                Call call = api.listNamespacedPod(namespace).labelSelector(selector.toString())
                        .resourceVersion(resourceVersion).watch(true).allowWatchBookmarks(true).timeoutSeconds(seconds)
                        .buildCall(null);
                watch = call;
                if (closed) {
                    return WatchEnd.RESYNC;
                }
                try (Response response = call.execute()) {
                    ResponseBody body = response.body();
                    if (!response.isSuccessful() || body == null) {
                        throw new ApiException(response.code(), response.headers().toMultimap(),
                                body == null ? null : body.string());
                    }
                    BufferedSource lines = body.source();
                    watching = true;
                    // The watch is a stream of JSON events, one a line
                    // (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes):
                    // read as plain JSON like the list, so a pod's unknown members cannot end it.
                    for (String line; (line = lines.readUtf8Line()) != null; ) {
                        if (closed) {
                            return WatchEnd.RESYNC;
                        }
                        if (line.isBlank()) {
                            continue;
                        }
                        JsonObject e = JsonParser.parseString(line).getAsJsonObject();
                        String type = LenientJson.string(e, "type", "watch event");
                        JsonObject object = LenientJson.object(e, "object", "watch event");
                        if ("ERROR".equals(type) || object == null) {
                            Integer code = "ERROR".equals(type) ? LenientJson.integer(object, "code", "Status") : null;
                            boolean gone = code != null && code == 410;
                            log.info("the pod watch ended with {} ({}): listing again{}", type, object == null ? ""
                                    : LenientJson.string(object, "message", "Status"), gone ? "" : " after a pause");
                            return gone ? WatchEnd.GONE : WatchEnd.FAILED;
                        }
                        events = true;
                        String version = PodJson.resourceVersion(object);
                        if (version != null) {
                            resourceVersion = version;
                        }
                        switch (type == null ? "" : type) {
                            case "ADDED", "MODIFIED" -> {
                                ExpertPod pod = read(object);
                                if (pod != null) {
                                    pods.put(pod);
                                } else {
                                    // Its state is unknown now: left out, as the list leaves it out.
                                    pods.remove(PodJson.name(object));
                                }
                            }
                            case "DELETED" -> {
                                String name = PodJson.name(object);
                                pods.remove(name);
                                unreadable.remove(name);
                            }
                            default -> {
                                continue; // BOOKMARK: only its resourceVersion
                            }
                        }
                        deliver();
                    }
                }
                watchFailureLogged = false;
                if (closed || System.nanoTime() - openedAt >= TimeUnit.SECONDS.toNanos(seconds)) {
                    return WatchEnd.RESYNC;
                }
                // Ended early and cleanly (an API server restarting closes its watches): resume at once. One that
                // ends as soon as it opens, with nothing in it, is treated as a failure, or a server that keeps
                // doing that would be asked again and again without a pause.
                return events || System.nanoTime() - openedAt >= FIRST_BACKOFF.toNanos() ? WatchEnd.CLOSED
                        : WatchEnd.FAILED;
            } catch (ApiException | IOException | RuntimeException e) {
                watching = false;
                if (closed) {
                    return WatchEnd.RESYNC;
                }
                if (e instanceof ApiException a && a.getCode() == 410) {
                    log.info("the pod watch from resourceVersion {} is Gone (410): listing again", resourceVersion);
                    return WatchEnd.GONE;
                }
                if (!watchFailureLogged) {
                    watchFailureLogged = true;
                    log.warn("watching the expert-service pods failed ({}): listing them again after a pause ({} "
                            + "doubling up to {})", describe(e), FIRST_BACKOFF, resync);
                }
                return WatchEnd.FAILED;
            } finally {
                watch = null;
            }
        }

        /**
         * The router's view of {@code pod}, or null when a member it reads cannot be read: logged once per pod and
         * reason (a pod that stays so is not logged on every event or resync).
         */
        private ExpertPod read(JsonObject pod) {
            String name = PodJson.name(pod);
            try {
                ExpertPod p = PodJson.view(pod);
                unreadable.remove(name);
                return p;
            } catch (LenientJson.Malformed e) {
                if (!e.getMessage().equals(unreadable.put(name, e.getMessage()))) {
                    log.warn("leaving out expert-service pod {}: it cannot be read ({})", name, e.getMessage());
                }
                return null;
            }
        }

        private void deliver() {
            if (closed) {
                return; // a closed run's list that returned late: the next run delivers
            }
            List<Instance> now = pods.ready();
            seen = pods.seen();
            ready = now.size();
            try {
                podsListener.accept(pods.all());
            } catch (RuntimeException e) {
                log.error("the expert-service pods could not be handed on", e);
            }
            Map<String, Integer> restarts = pods.restarts();
            // A container restart at the same pod IP leaves the instance set as it was: it is delivered all the
            // same, because the restarted process holds nothing and must be placed on again.
            if (!now.equals(delivered) || !restarts.equals(deliveredRestarts)) {
                delivered = now;
                deliveredRestarts = restarts;
                log.info("{} of {} expert-service pods ready: {}", now.size(), pods.seen(),
                        now.stream().map(Instance::getId).toList());
                try {
                    onChange.accept(now);
                } catch (RuntimeException e) {
                    log.error("the ready instance set could not be handed on", e);
                }
            }
        }

        private void failed(String what, Exception e) {
            String message = describe(e);
            if (!message.equals(lastError)) {
                lastError = message;
                log.warn("{} ({}); trying again after a pause ({} doubling up to {})", what, message, FIRST_BACKOFF,
                        resync);
            }
        }

        /** Sleeps after a failure: FIRST_BACKOFF, doubled for each failure in a row before it, at most the resync. */
        private void backOff() {
            failures++;
            long pause = FIRST_BACKOFF.toNanos() << Math.min(failures - 1, 30);
            pause = pause <= 0 ? resync.toNanos() : Math.min(pause, resync.toNanos());
            if (!closed) {
                try {
                    TimeUnit.NANOSECONDS.sleep(pause);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    closed = true;
                }
            }
        }

        void close() {
            closed = true;
            Call w = watch;
            if (w != null) {
                w.cancel();
            }
            Thread t = thread;
            if (t != null) {
                t.interrupt();
            }
        }
    }

    private static String describe(Exception e) {
        if (e instanceof ApiException a && a.getCode() != 0) {
            return "HTTP " + a.getCode() + (a.getCode() == 403 ? ": the router's Role must allow list and watch on pods"
                    : "");
        }
        return e.getClass().getSimpleName() + ": " + e.getMessage();
    }

    @Override
    public synchronized void close() {
        Run r = run;
        run = null;
        if (r != null) {
            r.close();
        }
    }
}
