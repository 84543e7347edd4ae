package io.moemesh.router.kubernetes;

import com.google.gson.reflect.TypeToken;
import io.kubernetes.client.openapi.ApiClient;
import io.kubernetes.client.openapi.ApiException;
import io.kubernetes.client.openapi.apis.CoreV1Api;
import io.kubernetes.client.openapi.models.V1Container;
import io.kubernetes.client.openapi.models.V1ContainerPort;
import io.kubernetes.client.openapi.models.V1Pod;
import io.kubernetes.client.openapi.models.V1PodCondition;
import io.kubernetes.client.openapi.models.V1PodList;
import io.kubernetes.client.util.Watch;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.router.discovery.ExpertPod;
import io.moemesh.router.discovery.InstanceDiscovery;
import io.moemesh.router.discovery.LabelSelector;
import io.moemesh.router.discovery.PodSet;
import java.io.IOException;
import java.lang.reflect.Type;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
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
 * <p>Errors (API down, 403, a watch that cannot be opened or breaks, a pod that cannot be read) are logged, once per
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
    private static final Type EVENT = new TypeToken<Watch.Response<V1Pod>>() { }.getType();
    /** The Ready condition's reason when the kubelet holds a pod NotReady for its readiness gates only. */
    static final String GATES_NOT_READY = "ReadinessGatesNotReady";
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

    private final ApiClient client;
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
        this.client = client;
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
        private volatile Watch<V1Pod> watch;
        private List<Instance> delivered;
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
                    V1PodList list = api.listNamespacedPod(namespace).labelSelector(selector.toString()).execute();
                    List<ExpertPod> all = new ArrayList<>();
                    for (V1Pod p : list.getItems()) {
                        all.add(view(p));
                    }
                    pods.replaceAll(all);
                    deliver();
                    resourceVersion = list.getMetadata() == null ? null : list.getMetadata().getResourceVersion();
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
            try (Watch<V1Pod> w = Watch.createWatch(client, api.listNamespacedPod(namespace)
                    .labelSelector(selector.toString()).resourceVersion(resourceVersion).watch(true)
                    .allowWatchBookmarks(true).timeoutSeconds(seconds).buildCall(null), EVENT)) {
                watch = w;
                watching = true;
                for (Watch.Response<V1Pod> e : w) {
                    if (closed) {
                        return WatchEnd.RESYNC;
                    }
                    if ("ERROR".equals(e.type) || e.object == null) {
                        boolean gone = e.status != null && e.status.getCode() != null && e.status.getCode() == 410;
                        log.info("the pod watch ended with {} ({}): listing again{}", e.type,
                                e.status == null ? "" : e.status.getMessage(), gone ? "" : " after a pause");
                        return gone ? WatchEnd.GONE : WatchEnd.FAILED;
                    }
                    events = true;
                    if (e.object.getMetadata() != null && e.object.getMetadata().getResourceVersion() != null) {
                        resourceVersion = e.object.getMetadata().getResourceVersion();
                    }
                    switch (e.type) {
                        case "ADDED", "MODIFIED" -> pods.put(view(e.object));
                        case "DELETED" -> pods.remove(e.object.getMetadata() == null ? null
                                : e.object.getMetadata().getName());
                        default -> {
                            continue; // BOOKMARK: only its resourceVersion
                        }
                    }
                    deliver();
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
            Watch<V1Pod> w = watch;
            if (w != null) {
                try {
                    w.close();
                } catch (IOException | RuntimeException e) {
                    log.debug("closing the pod watch", e);
                }
            }
            Thread t = thread;
            if (t != null) {
                t.interrupt();
            }
        }
    }

    private static String describe(Exception e) {
        if (e instanceof ApiException a && a.getCode() != 0) {
            return "HTTP " + a.getCode() + (a.getCode() == 403 ? ": the router's Role must allow get, list and watch on "
                    + "pods" : "");
        }
        return e.getClass().getSimpleName() + ": " + e.getMessage();
    }

    /**
     * The router's view of a pod; null fields where the API gave none. Placeable on ContainersReady, not on Ready
     * alone: the chart's readiness gate ({@value ExpertPod#PLACED}) keeps Ready False until the router has placed on
     * the pod. But a Ready=False that is not the gate's takes the pod out ({@link ExpertPod#notReadyOtherwise}): the
     * node controller marks the pods of a node it lost (NotReady or unreachable for the node monitor grace, under a
     * minute by default) Ready=False and nothing else, their ContainersReady stays True until they are evicted
     * (after the 300 s not-ready toleration), and meanwhile every switch would PREPARE on pods nobody can reach. The
     * gate is what keeps a pod NotReady when the pod lists it in spec.readinessGates and either the Ready condition
     * carries the kubelet's reason for it, {@value #GATES_NOT_READY} (also while the kubelet has not yet re-evaluated
     * the gate the router just set True: otherwise every placement would take its pod out until then), or the gate
     * condition was never written (a new pod the router has not placed yet). Not "whenever the gate condition is not
     * True": the router sets it False on the lost node's pods once it re-placed without them, and they would then
     * look placeable again, and be re-placed on and failed on, over and over. The node controller keeps the reason
     * the kubelet last wrote, none on a pod that was Ready. The node's own Ready condition is not read: discovery
     * watches pods only.
     */
    static ExpertPod view(V1Pod p) {
        var meta = p.getMetadata();
        var status = p.getStatus();
        List<V1PodCondition> conditions = status == null || status.getConditions() == null ? List.of()
                : status.getConditions();
        boolean hasContainersReady = conditions.stream().anyMatch(c -> "ContainersReady".equals(c.getType()));
        // A kubelet reports ContainersReady next to Ready (Kubernetes >= 1.12); Ready stands in for it only on a pod
        // that has none (one whose status was not written by a kubelet).
        boolean containersReady = isTrue(conditions, hasContainersReady ? "ContainersReady" : "Ready");
        boolean notReadyOtherwise = false;
        V1PodCondition ready = condition(conditions, "Ready");
        if (hasContainersReady && ready != null && !"True".equals(ready.getStatus())) {
            boolean gated = p.getSpec() != null && p.getSpec().getReadinessGates() != null && p.getSpec()
                    .getReadinessGates().stream().anyMatch(g -> ExpertPod.PLACED.equals(g.getConditionType()));
            boolean neverPlaced = condition(conditions, ExpertPod.PLACED) == null;
            notReadyOtherwise = !(gated && (neverPlaced || GATES_NOT_READY.equals(ready.getReason())));
        }
        Integer grpcPort = null;
        if (p.getSpec() != null && p.getSpec().getContainers() != null) {
            for (V1Container c : p.getSpec().getContainers()) {
                for (V1ContainerPort port : c.getPorts() == null ? List.<V1ContainerPort>of() : c.getPorts()) {
                    if ("grpc".equals(port.getName())) {
                        grpcPort = port.getContainerPort();
                    }
                }
            }
        }
        return new ExpertPod(meta == null ? null : meta.getName(), meta == null ? null : meta.getLabels(),
                meta == null ? null : meta.getAnnotations(), meta != null && meta.getDeletionTimestamp() != null,
                status == null ? null : status.getPhase(), containersReady, status == null ? null : status.getPodIP(),
                grpcPort, p.getSpec() == null ? null : p.getSpec().getNodeName(), isTrue(conditions, ExpertPod.PLACED),
                meta == null ? null : meta.getUid(), restarts(status), notReadyOtherwise);
    }

    private static int restarts(io.kubernetes.client.openapi.models.V1PodStatus status) {
        if (status == null || status.getContainerStatuses() == null) {
            return 0;
        }
        int sum = 0;
        for (var c : status.getContainerStatuses()) {
            sum += c.getRestartCount() == null ? 0 : c.getRestartCount();
        }
        return sum;
    }

    private static V1PodCondition condition(List<V1PodCondition> conditions, String type) {
        return conditions.stream().filter(c -> type.equals(c.getType())).findFirst().orElse(null);
    }

    private static boolean isTrue(List<V1PodCondition> conditions, String type) {
        return conditions.stream().anyMatch(c -> type.equals(c.getType()) && "True".equals(c.getStatus()));
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
