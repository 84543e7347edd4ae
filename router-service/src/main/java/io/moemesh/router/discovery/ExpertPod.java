package io.moemesh.router.discovery;

import io.moemesh.proto.router.v1.Instance;
import java.util.Map;

/**
 * What the router reads of one expert-service pod (a plain view of the Kubernetes object, so the rules below are
 * tested without an API server).
 *
 * @param name        metadata.name: the instance id (the chart sets {@code MOEMESH_EXPERT_INSTANCE_ID} from it)
 * @param labels      metadata.labels
 * @param annotations metadata.annotations: {@code moemesh.io/device} ({@code cpu} or {@code gpu}),
 *                    {@code moemesh.io/gpus} (a count), optional {@code moemesh.io/memory-budget-bytes}
 * @param terminating     metadata.deletionTimestamp is set
 * @param phase           status.phase ({@code Pending}, {@code Running}, ...), may be null
 * @param containersReady the {@code ContainersReady} condition is {@code True} (the {@code Ready} condition when the
 *                        pod reports no ContainersReady). Not {@code Ready} alone: with the chart's readiness gate a
 *                        pod is Ready only once the router has placed on it ({@link #PLACED}), so judging on Ready the
 *                        router would never place on a new pod; a Ready=False that is not the gate's is
 *                        {@code notReadyOtherwise}.
 * @param podIp           status.podIP, may be null
 * @param grpcPort        the container port named {@code grpc}, or null when no container declares one
 * @param nodeName        spec.nodeName, the node the pod runs on (its failure domain), null before it is scheduled
 * @param placed          the {@value #PLACED} condition is {@code True}: the router has placed on the pod
 * @param uid             metadata.uid, may be null: tells a pod from another recreated under the same name
 * @param restarts        the restart counts of its containers (status.containerStatuses[].restartCount), summed: a
 *                        container restart at the same pod IP is a new process that holds no experts, which the name
 *                        and endpoint alone do not show
 * @param notReadyOtherwise the {@code Ready} condition is False for another reason than the router's readiness gate:
 *                        the node controller marks every pod of a node it lost Ready=False (and nothing else: their
 *                        ContainersReady stays True, their phase Running, until they are evicted minutes later), so a
 *                        pod whose containers look ready is still gone. False while the gate is what keeps it
 *                        NotReady: the Ready condition's reason is the kubelet's {@code ReadinessGatesNotReady}
 *                        (still there for a moment after the router set the gate True), or the router never wrote the
 *                        {@value #PLACED} condition (a new pod)
 */
public record ExpertPod(String name, Map<String, String> labels, Map<String, String> annotations, boolean terminating,
                        String phase, boolean containersReady, String podIp, Integer grpcPort, String nodeName,
                        boolean placed, String uid, int restarts, boolean notReadyOtherwise) {
    /**
     * The pod condition the router sets True once a published epoch includes the pod and the pod committed it (and
     * False when a newer epoch no longer includes it or its container restarted): the chart's readiness gate on the
     * expert-service pods (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-readiness-gate), so
     * a rolling update or a drain waits for the router's re-placement.
     */
    public static final String PLACED = "moemesh.io/placed";
    public static final String DEVICE = "moemesh.io/device";
    public static final String GPUS = "moemesh.io/gpus";
    public static final String MEMORY_BUDGET = "moemesh.io/memory-budget-bytes";

    public ExpertPod {
        labels = labels == null ? Map.of() : Map.copyOf(labels);
        annotations = annotations == null ? Map.of() : Map.copyOf(annotations);
    }

    /** A pod with no uid known and no container restart, NotReady (if at all) only for the gate. */
    public ExpertPod(String name, Map<String, String> labels, Map<String, String> annotations, boolean terminating,
                     String phase, boolean containersReady, String podIp, Integer grpcPort, String nodeName,
                     boolean placed) {
        this(name, labels, annotations, terminating, phase, containersReady, podIp, grpcPort, nodeName, placed, null, 0);
    }

    /** A pod NotReady (if at all) only for the gate. */
    public ExpertPod(String name, Map<String, String> labels, Map<String, String> annotations, boolean terminating,
                     String phase, boolean containersReady, String podIp, Integer grpcPort, String nodeName,
                     boolean placed, String uid, int restarts) {
        this(name, labels, annotations, terminating, phase, containersReady, podIp, grpcPort, nodeName, placed, uid,
                restarts, false);
    }

    /**
     * What the router makes of the pod: an instance to place on, not ready yet (normal, not logged), or ignored for a
     * reason (malformed: logged). The device slot is 0: every pod is given its own devices (the chart's one pod per
     * GPU), which it sees from ordinal 0; the annotations are checked so that a pod the chart did not render is not
     * placed on by mistake. The failure domain is the pod's node: the pods of one node fail together.
     *
     * @param selector    the discovery's label selector (checked again here)
     * @param defaultPort the port when no container port is named {@code grpc}
     */
    public Verdict judge(LabelSelector selector, int defaultPort) {
        if (name == null || name.isBlank()) {
            return Verdict.ignored("it has no name");
        }
        if (!selector.matches(labels)) {
            return Verdict.ignored("its labels " + labels + " do not match the selector " + selector);
        }
        String device = annotations.get(DEVICE);
        if (device != null && !device.equals("cpu") && !device.equals("gpu")) {
            return Verdict.ignored("annotation " + DEVICE + " must be cpu or gpu, got \"" + device + "\"");
        }
        String gpus = annotations.get(GPUS);
        if (gpus != null && !gpus.matches("\\d{1,4}")) {
            return Verdict.ignored("annotation " + GPUS + " must be a count >= 0, got \"" + gpus + "\"");
        }
        String memory = annotations.get(MEMORY_BUDGET);
        long memoryBytes = 0;
        if (memory != null) {
            try {
                memoryBytes = Long.parseLong(memory.strip());
            } catch (NumberFormatException e) {
                memoryBytes = -1;
            }
            if (memoryBytes < 0) {
                return Verdict.ignored("annotation " + MEMORY_BUDGET + " must be bytes >= 0, got \"" + memory + "\"");
            }
        }
        if (grpcPort != null && (grpcPort < 1 || grpcPort > 65535)) {
            return Verdict.ignored("its container port grpc is " + grpcPort + ", not in [1, 65535]");
        }
        if (terminating) {
            return Verdict.notReady("it is terminating");
        }
        if (!"Running".equals(phase) || !containersReady) {
            return Verdict.notReady("phase " + phase + ", containers ready " + containersReady);
        }
        if (notReadyOtherwise) {
            return Verdict.notReady("its Ready condition is False for another reason than the readiness gate (its node "
                    + "lost?)");
        }
        if (podIp == null || podIp.isBlank()) {
            return Verdict.ignored("it is Running with its containers ready but has no pod IP");
        }
        int port = grpcPort != null ? grpcPort : defaultPort;
        String host = podIp.contains(":") ? "[" + podIp + "]" : podIp;
        return Verdict.instance(Instance.newBuilder().setId(name).setEndpoint(host + ":" + port).setDeviceSlot(0)
                .setMemoryBudgetBytes(memoryBytes).setFailureDomain(nodeName == null ? "" : nodeName).build());
    }

    /** An instance, or why the pod is not one (ignored = malformed, worth a log line; otherwise not ready yet). */
    public record Verdict(Instance instance, String reason, boolean ignored) {
        static Verdict instance(Instance in) {
            return new Verdict(in, null, false);
        }

        static Verdict notReady(String reason) {
            return new Verdict(null, reason, false);
        }

        static Verdict ignored(String reason) {
            return new Verdict(null, reason, true);
        }
    }
}
