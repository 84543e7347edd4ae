package io.moemesh.router.kubernetes;

import com.google.gson.JsonObject;
import io.moemesh.router.discovery.ExpertPod;
import java.util.List;

/**
 * The router's view of an expert-service pod, read from the pod's JSON ({@link LenientJson}): only the members below,
 * so a pod carrying members a newer Kubernetes adds is read like any other. A member below of the wrong JSON type makes
 * the pod unreadable ({@link LenientJson.Malformed}): the discovery leaves that pod out and goes on with the others.
 *
 * <p>Read: metadata.name, labels, annotations, deletionTimestamp, uid; spec.nodeName, readinessGates[].conditionType,
 * containers[].ports[].name and containerPort; status.phase, podIP, conditions[].type, status and reason,
 * containerStatuses[].restartCount.
 */
final class PodJson {
    /** The Ready condition's reason when the kubelet holds a pod NotReady for its readiness gates only. */
    static final String GATES_NOT_READY = "ReadinessGatesNotReady";

    private PodJson() {
    }

    /** metadata.name, or null when the pod has none or it cannot be read (for messages and deletions). */
    static String name(JsonObject pod) {
        try {
            return LenientJson.string(LenientJson.object(pod, "metadata", "pod"), "name", "metadata");
        } catch (LenientJson.Malformed e) {
            return null;
        }
    }

    /** {@code object}'s metadata.resourceVersion (a list's or a pod's), or null. */
    static String resourceVersion(JsonObject object) {
        return LenientJson.string(LenientJson.object(object, "metadata", "object"), "resourceVersion", "metadata");
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
     *
     * @throws LenientJson.Malformed when a member read has the wrong JSON type
     */
    static ExpertPod view(JsonObject pod) {
        JsonObject meta = LenientJson.object(pod, "metadata", "pod");
        JsonObject spec = LenientJson.object(pod, "spec", "pod");
        JsonObject status = LenientJson.object(pod, "status", "pod");
        List<Condition> conditions = LenientJson.objects(status, "conditions", "status").stream()
                .map(c -> new Condition(LenientJson.string(c, "type", "status.conditions[]"),
                        LenientJson.string(c, "status", "status.conditions[]"),
                        LenientJson.string(c, "reason", "status.conditions[]")))
                .toList();
        boolean hasContainersReady = condition(conditions, "ContainersReady") != null;
        // A kubelet reports ContainersReady next to Ready (Kubernetes >= 1.12); Ready stands in for it only on a pod
        // that has none (one whose status was not written by a kubelet).
        boolean containersReady = isTrue(conditions, hasContainersReady ? "ContainersReady" : "Ready");
        boolean notReadyOtherwise = false;
        Condition ready = condition(conditions, "Ready");
        if (hasContainersReady && ready != null && !"True".equals(ready.status())) {
            boolean gated = LenientJson.objects(spec, "readinessGates", "spec").stream().anyMatch(g -> ExpertPod.PLACED
                    .equals(LenientJson.string(g, "conditionType", "spec.readinessGates[]")));
            boolean neverPlaced = condition(conditions, ExpertPod.PLACED) == null;
            notReadyOtherwise = !(gated && (neverPlaced || GATES_NOT_READY.equals(ready.reason())));
        }
        Integer grpcPort = null;
        for (JsonObject c : LenientJson.objects(spec, "containers", "spec")) {
            for (JsonObject port : LenientJson.objects(c, "ports", "spec.containers[]")) {
                if ("grpc".equals(LenientJson.string(port, "name", "spec.containers[].ports[]"))) {
                    grpcPort = LenientJson.integer(port, "containerPort", "spec.containers[].ports[]");
                }
            }
        }
        int restarts = 0;
        for (JsonObject c : LenientJson.objects(status, "containerStatuses", "status")) {
            Integer n = LenientJson.integer(c, "restartCount", "status.containerStatuses[]");
            restarts += n == null ? 0 : n;
        }
        return new ExpertPod(LenientJson.string(meta, "name", "metadata"),
                LenientJson.strings(meta, "labels", "metadata"), LenientJson.strings(meta, "annotations", "metadata"),
                LenientJson.string(meta, "deletionTimestamp", "metadata") != null,
                LenientJson.string(status, "phase", "status"), containersReady,
                LenientJson.string(status, "podIP", "status"), grpcPort, LenientJson.string(spec, "nodeName", "spec"),
                isTrue(conditions, ExpertPod.PLACED), LenientJson.string(meta, "uid", "metadata"), restarts,
                notReadyOtherwise);
    }

    /** One of status.conditions[]. */
    private record Condition(String type, String status, String reason) {
    }

    private static Condition condition(List<Condition> conditions, String type) {
        return conditions.stream().filter(c -> type.equals(c.type())).findFirst().orElse(null);
    }

    private static boolean isTrue(List<Condition> conditions, String type) {
        return conditions.stream().anyMatch(c -> type.equals(c.type()) && "True".equals(c.status()));
    }
}
