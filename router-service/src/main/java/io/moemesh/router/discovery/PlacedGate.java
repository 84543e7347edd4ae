package io.moemesh.router.discovery;

import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The router's side of the expert-service pods' readiness gate (Kubernetes' pod readiness gates:
 * https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-readiness-gate). The chart lists the condition
 * {@value ExpertPod#PLACED} in the pods' {@code readinessGates}, so a pod is Ready only once its containers are and this
 * condition is True. The router sets it True once a published epoch includes the pod and the pod committed it (it then
 * serves its share at that epoch), so a StatefulSet rolling update, which replaces the next pod only once the last one
 * is Ready, and a node drain, whose evictions the PodDisruptionBudget admits by Ready pods, both wait for the router's
 * re-placement instead of taking two holders of an expert down together.
 *
 * <p>It sets it False again (reason {@value #NOT_PLACED}) when a newer published epoch no longer includes the pod: its
 * container restarted (ContainersReady went False, so discovery dropped it and the router re-placed without it), and the
 * restarted process holds nothing, so it must not turn Ready before the router places on it again. Likewise when the
 * pod's container restart count moved past the one the epoch placed it with (a restart discovery never saw as
 * not ready, e.g. an OOM kill whose container was ready again at the same IP before the router re-placed): the kubelet
 * would otherwise turn the pod Ready again on the True condition while it holds nothing, and the PodDisruptionBudget
 * would count it as a holder. A pod is marked
 * True only when it is, as discovery sees it now, the instance the epoch placed on (same endpoint: a pod recreated
 * under the same name has another IP and waits for its own epoch; one whose container restarted at the same IP, with a
 * higher restart count, waits for the epoch that places on the new process). Terminating pods are left alone.
 *
 * <p>What is due is computed afresh from the latest pods and the latest committed epoch on every change of either
 * ({@link #due}), and written by {@link PodConditions} on one background thread, never on the replan or discovery
 * thread: a write that fails (API down, 403) is logged, once per distinct message, and simply due again at the next
 * publication or pod list (every resync period): never a failed replan.
 */
public final class PlacedGate implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(PlacedGate.class);
    /** The condition's reason when True. */
    public static final String PLACED = "Placed";
    /** The condition's reason when False. */
    public static final String NOT_PLACED = "NotInPlacement";

    /** Writes the condition on a pod's status. */
    public interface PodConditions {
        /** @throws RuntimeException when the write failed (the change is due again later) */
        void set(Change change);
    }

    /**
     * The condition to write on one pod.
     *
     * @param uid the pod's metadata.uid as discovery saw it (null when unknown): the write is for that pod only, not
     *            for one recreated under the same name meanwhile
     */
    public record Change(String pod, String uid, boolean placed, String reason, String message) {
    }

    private final PodConditions writer;
    private final LabelSelector selector;
    private final int defaultPort;
    private final ExecutorService executor;
    private final AtomicBoolean queued = new AtomicBoolean();
    private final AtomicLong writes = new AtomicLong();
    private final AtomicLong failures = new AtomicLong();
    private final Object lock = new Object();
    private List<ExpertPod> pods;
    private Placement epoch;
    private Set<String> committed = Set.of();
    private Map<String, Integer> committedRestarts = Map.of();
    /** The last failure message logged (writer thread): the rate limit of those log lines. */
    private String lastError;
    /**
     * By pod: the change last written and the pod as seen then (writer thread). The same change is not written again
     * while discovery still shows the pod as it was before the write: its watch event has not come yet.
     */
    private final Map<String, Written> written = new HashMap<>();

    private record Written(Change change, ExpertPod before) {
    }

    /**
     * @param selector    the discovery's label selector and {@code defaultPort} its default gRPC port: a pod is
     *                    judged as discovery judges it ({@link ExpertPod#judge})
     * @param executor    one thread: the writes run there
     */
    public PlacedGate(PodConditions writer, LabelSelector selector, int defaultPort, ExecutorService executor) {
        this.writer = writer;
        this.selector = selector;
        this.defaultPort = defaultPort;
        this.executor = executor;
    }

    /** Every expert-service pod, as discovery last saw them (after each list and watch event; any thread). */
    public void pods(Collection<ExpertPod> all) {
        synchronized (lock) {
            pods = List.copyOf(all);
        }
        schedule();
    }

    /** A published epoch whose COMMIT {@code committedIds} succeeded on, restart counts unknown. */
    public void committed(Placement p, Collection<String> committedIds) {
        committed(p, committedIds, Map.of());
    }

    /**
     * A published epoch whose COMMIT {@code committedIds} succeeded on (the replan thread), placed on pods with the
     * container restart counts {@code restarts} (by name; a pod missing there is not checked).
     */
    public void committed(Placement p, Collection<String> committedIds, Map<String, Integer> restarts) {
        synchronized (lock) {
            if (epoch != null && Long.compareUnsigned(p.getEpoch(), epoch.getEpoch()) < 0) {
                return;
            }
            epoch = p;
            committed = Set.copyOf(committedIds);
            committedRestarts = Map.copyOf(restarts);
        }
        schedule();
    }

    /** Conditions written, since the start. */
    public long writes() {
        return writes.get();
    }

    /** Condition writes that failed (each due again at the next publication or pod list), since the start. */
    public long failures() {
        return failures.get();
    }

    /**
     * The conditions to write, by pod name: True on a pod that is the instance {@code epoch} placed on and committed
     * it, and whose condition is not True yet; False on a pod whose condition is True and that {@code epoch} does not
     * include. Nothing for terminating pods, nothing before an epoch is known. Not True, and False where it is True, on
     * a pod whose container restart count differs from the one it was placed with ({@code restarts}): it restarted at
     * the same endpoint after (or while) the epoch was loaded, holds nothing, and the router places on it again.
     */
    static List<Change> due(Collection<ExpertPod> pods, Placement epoch, Set<String> committed,
                            Map<String, Integer> restarts, LabelSelector selector, int defaultPort) {
        if (epoch == null || pods == null) {
            return List.of();
        }
        Map<String, Instance> placedOn = new HashMap<>();
        epoch.getInstancesList().forEach(in -> placedOn.put(in.getId(), in));
        List<Change> out = new ArrayList<>();
        List<ExpertPod> sorted = new ArrayList<>(pods);
        sorted.sort(Comparator.comparing(ExpertPod::name, Comparator.nullsFirst(Comparator.naturalOrder())));
        String at = "placement epoch " + Long.toUnsignedString(epoch.getEpoch());
        for (ExpertPod p : sorted) {
            if (p.name() == null || p.terminating()) {
                continue;
            }
            Instance placed = placedOn.get(p.name());
            Integer placedWith = restarts.get(p.name());
            boolean restarted = placedWith != null && placedWith != p.restarts();
            if (!p.placed()) {
                Instance now = p.judge(selector, defaultPort).instance();
                if (placed != null && committed.contains(p.name()) && placed.equals(now) && !restarted) {
                    out.add(new Change(p.name(), p.uid(), true, PLACED,
                            at + " places experts on this pod, which committed it"));
                }
            } else if (placed == null) {
                out.add(new Change(p.name(), p.uid(), false, NOT_PLACED, at + " does not include this pod: the router places on"
                        + " it again once its containers are ready"));
            } else if (restarted) {
                out.add(new Change(p.name(), p.uid(), false, NOT_PLACED, "its container restarted (restart count "
                        + p.restarts() + ", placed by " + at + " at " + placedWith + ") and holds nothing: the router "
                        + "places on it again"));
            }
        }
        return out;
    }

    private void schedule() {
        if (queued.compareAndSet(false, true)) {
            try {
                executor.execute(() -> {
                    queued.set(false); // a change from now on schedules another pass
                    sync();
                });
            } catch (RejectedExecutionException e) {
                queued.set(false); // closed
            }
        }
    }

    private void sync() {
        List<Change> changes;
        Map<String, ExpertPod> seen = new HashMap<>();
        synchronized (lock) {
            changes = due(pods, epoch, committed, committedRestarts, selector, defaultPort);
            if (pods != null) {
                pods.forEach(p -> seen.put(p.name(), p));
            }
        }
        written.keySet().retainAll(seen.keySet());
        for (Change c : changes) {
            ExpertPod before = seen.get(c.pod());
            if (new Written(c, before).equals(written.get(c.pod()))) {
                continue; // written; the pod's watch event with it is on its way
            }
            try {
                writer.set(c);
                written.put(c.pod(), new Written(c, before));
                writes.incrementAndGet();
                log.info("pod {}: condition {} set {} ({})", c.pod(), ExpertPod.PLACED, c.placed() ? "True" : "False",
                        c.message());
                lastError = null;
            } catch (Exception e) { // okhttp may throw InterruptedException unchecked when closed mid-call
                if (e instanceof InterruptedException || Thread.currentThread().isInterrupted()) {
                    Thread.currentThread().interrupt();
                    return; // closing
                }
                failures.incrementAndGet();
                String message = e.getMessage();
                if (message == null || !message.equals(lastError)) {
                    lastError = message;
                    log.warn("pod {}: condition {} not set {} ({}); tried again at the next publication or pod list "
                            + "(readiness waits meanwhile)", c.pod(), ExpertPod.PLACED, c.placed(), message);
                }
            }
        }
    }

    @Override
    public void close() {
        executor.shutdownNow();
        try {
            executor.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
