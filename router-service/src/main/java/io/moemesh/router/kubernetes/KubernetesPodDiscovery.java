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
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The expert-service pods of one namespace and label selector, from the Kubernetes API with the official client
 * ({@code io.kubernetes:client-java}): a list (the full state, also every resync period), then a watch from the list's
 * resourceVersion until the resync period ends, its ADDED/MODIFIED/DELETED events applied as they come. When the watch
 * cannot be opened or breaks, the discovery goes on with the list alone, repeated every resync period (logged once): the
 * set then follows pods within a resync period instead of at once. Every error (API down, 403, a pod that cannot be
 * read) is logged, once per distinct message, and retried at the next period: never a crash of the router. Runs on its
 * own daemon thread.
 */
public final class KubernetesPodDiscovery implements InstanceDiscovery {
    private static final Logger log = LoggerFactory.getLogger(KubernetesPodDiscovery.class);
    private static final Type EVENT = new TypeToken<Watch.Response<V1Pod>>() { }.getType();

    private final ApiClient client;
    private final CoreV1Api api;
    private final String namespace;
    private final LabelSelector selector;
    private final Duration resync;
    private final PodSet pods;
    private volatile boolean closed;
    private volatile Thread thread;
    private volatile Watch<V1Pod> watch;
    private volatile int ready;
    private volatile int seen;
    private volatile boolean watching;
    private List<Instance> delivered;
    private String lastError;
    private boolean watchFailureLogged;

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
        this.pods = new PodSet(selector, defaultPort);
    }

    @Override
    public void start(Consumer<List<Instance>> onChange) {
        log.info("discovering expert-service pods in namespace {} with labels {} (resync every {})", namespace,
                selector, resync);
        thread = Thread.ofPlatform().name("router-discovery").daemon().start(() -> loop(onChange));
    }

    @Override
    public int ready() {
        return ready;
    }

    @Override
    public int seen() {
        return seen;
    }

    /** Whether the last watch opened (false: the discovery runs on the periodic list alone). */
    public boolean watching() {
        return watching;
    }

    private void loop(Consumer<List<Instance>> onChange) {
        while (!closed) {
            long listedAt = System.nanoTime();
            String resourceVersion;
            try {
                V1PodList list = api.listNamespacedPod(namespace).labelSelector(selector.toString()).execute();
                List<ExpertPod> all = new ArrayList<>();
                for (V1Pod p : list.getItems()) {
                    all.add(view(p));
                }
                pods.replaceAll(all);
                deliver(onChange);
                resourceVersion = list.getMetadata() == null ? null : list.getMetadata().getResourceVersion();
                lastError = null;
            } catch (ApiException | RuntimeException e) {
                failed("listing the expert-service pods failed", e);
                pause(listedAt);
                continue;
            }
            if (!watchUntilResync(resourceVersion, onChange)) {
                pause(listedAt); // ~0 after a watch that lasted the period; the period's rest when it failed
            }
        }
    }

    /** @return whether to list again at once (the watch ended with an ERROR event such as 410 Gone) */
    private boolean watchUntilResync(String resourceVersion, Consumer<List<Instance>> onChange) {
        int seconds = (int) Math.max(1, resync.toSeconds());
        try (Watch<V1Pod> w = Watch.createWatch(client, api.listNamespacedPod(namespace)
                .labelSelector(selector.toString()).resourceVersion(resourceVersion).watch(true)
                .allowWatchBookmarks(true).timeoutSeconds(seconds).buildCall(null), EVENT)) {
            watch = w;
            watching = true;
            for (Watch.Response<V1Pod> e : w) {
                if (closed) {
                    return false;
                }
                switch (e.type) {
                    case "ADDED", "MODIFIED" -> pods.put(view(e.object));
                    case "DELETED" -> pods.remove(e.object.getMetadata() == null ? null
                            : e.object.getMetadata().getName());
                    case "BOOKMARK" -> {
                        continue;
                    }
                    default -> {
                        // ERROR: typically 410 Gone (the resourceVersion is too old): list again.
                        log.info("the pod watch ended with {} ({}): listing again", e.type,
                                e.status == null ? "" : e.status.getMessage());
                        return true;
                    }
                }
                deliver(onChange);
            }
            return false;
        } catch (ApiException | IOException | RuntimeException e) {
            watching = false;
            if (closed) {
                return false;
            }
            if (!watchFailureLogged) {
                watchFailureLogged = true;
                log.warn("watching the expert-service pods failed ({}): following them by listing every {} instead",
                        describe(e), resync);
            }
            return false;
        } finally {
            watch = null;
        }
    }

    private void deliver(Consumer<List<Instance>> onChange) {
        List<Instance> now = pods.ready();
        seen = pods.seen();
        ready = now.size();
        if (!now.equals(delivered)) {
            delivered = now;
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
            log.warn("{} ({}); trying again every {}", what, message, resync);
        }
    }

    private static String describe(Exception e) {
        if (e instanceof ApiException a && a.getCode() != 0) {
            return "HTTP " + a.getCode() + (a.getCode() == 403 ? ": the router's Role must allow get, list and watch on "
                    + "pods" : "");
        }
        return e.getClass().getSimpleName() + ": " + e.getMessage();
    }

    private void pause(long since) {
        long left = resync.toNanos() - (System.nanoTime() - since);
        if (left > 0 && !closed) {
            try {
                TimeUnit.NANOSECONDS.sleep(left);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                closed = true;
            }
        }
    }

    /** The router's view of a pod; null fields where the API gave none. */
    static ExpertPod view(V1Pod p) {
        var meta = p.getMetadata();
        var status = p.getStatus();
        boolean ready = status != null && status.getConditions() != null && status.getConditions().stream()
                .anyMatch((V1PodCondition c) -> "Ready".equals(c.getType()) && "True".equals(c.getStatus()));
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
                status == null ? null : status.getPhase(), ready, status == null ? null : status.getPodIP(), grpcPort);
    }

    @Override
    public void close() {
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
