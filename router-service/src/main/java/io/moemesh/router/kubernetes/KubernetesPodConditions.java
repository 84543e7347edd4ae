package io.moemesh.router.kubernetes;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import io.kubernetes.client.custom.V1Patch;
import io.kubernetes.client.openapi.ApiClient;
import io.kubernetes.client.openapi.ApiException;
import io.kubernetes.client.openapi.apis.CoreV1Api;
import io.kubernetes.client.util.PatchUtils;
import io.moemesh.router.discovery.ExpertPod;
import io.moemesh.router.discovery.PlacedGate;
import java.time.Clock;
import java.time.temporal.ChronoUnit;

/**
 * Writes the readiness-gate condition {@value ExpertPod#PLACED} on an expert-service pod through the official client:
 * a PATCH of the pod's {@code status} subresource (the router's Role allows {@code patch} on {@code pods/status},
 * nothing else) as a strategic merge patch, {@code {"status":{"conditions":[{"type":"moemesh.io/placed",...}]}}}.
 * Strategic merge because {@code status.conditions} is a list whose patch merge key is {@code type} (PodStatus in
 * k8s.io/api/core/v1/types.go: {@code patchStrategy:"merge" patchMergeKey:"type"}): the API server replaces or adds
 * the one condition of that type and keeps the kubelet's own (Ready, ContainersReady, ...). A JSON merge patch would
 * replace the whole list, and a JSON patch needs the condition's index, which the kubelet's updates may move. The
 * patch names the pod's {@code metadata.uid} as discovery saw it, a precondition the API server checks.
 */
public final class KubernetesPodConditions implements PlacedGate.PodConditions {
    /** The field manager named in the API server's managed fields. */
    static final String FIELD_MANAGER = "moemesh-router";

    private final ApiClient client;
    private final CoreV1Api api;
    private final String namespace;
    private final Clock clock;

    public KubernetesPodConditions(ApiClient client, String namespace, Clock clock) {
        this.client = client;
        this.api = new CoreV1Api(client);
        this.namespace = namespace;
        this.clock = clock;
    }

    @Override
    public void set(PlacedGate.Change change) {
        String body = patch(change, clock.instant().truncatedTo(ChronoUnit.SECONDS).toString());
        try {
            // The answer (the whole pod) is read as a plain JSON tree and dropped: through the generated V1Pod a
            // pod member newer than the client would fail a patch the API server applied (see LenientJson).
            PatchUtils.patch(JsonObject.class, () -> api.patchNamespacedPodStatus(change.pod(), namespace, new V1Patch(body))
                    .fieldManager(FIELD_MANAGER).buildCall(null), V1Patch.PATCH_FORMAT_STRATEGIC_MERGE_PATCH, client);
        } catch (ApiException e) {
            throw new IllegalStateException("patching the status of pod " + namespace + "/" + change.pod()
                    + " failed: " + explain(e), e);
        }
    }

    /**
     * The strategic merge patch. lastTransitionTime is now: the gate writes a condition only when its status changes
     * (True on a pod without it, False on one with it True).
     */
    static String patch(PlacedGate.Change change, String now) {
        JsonObject condition = new JsonObject();
        condition.addProperty("type", ExpertPod.PLACED);
        condition.addProperty("status", change.placed() ? "True" : "False");
        condition.addProperty("reason", change.reason());
        condition.addProperty("message", change.message());
        condition.addProperty("lastTransitionTime", now);
        JsonArray conditions = new JsonArray();
        conditions.add(condition);
        JsonObject status = new JsonObject();
        status.add("conditions", conditions);
        JsonObject root = new JsonObject();
        if (change.uid() != null) {
            // The patch is addressed by name; with the uid in it the API server refuses it (409 Conflict) when the
            // pod was deleted and recreated under that name meanwhile, so a successor never gets a condition meant
            // for its predecessor.
            JsonObject metadata = new JsonObject();
            metadata.addProperty("uid", change.uid());
            root.add("metadata", metadata);
        }
        root.add("status", status);
        return root.toString();
    }

    private static String explain(ApiException e) {
        return switch (e.getCode()) {
            case 0 -> e.getMessage();
            case 403 -> "HTTP 403: the router's Role must allow patch on pods/status (the chart grants it with "
                    + "expertService.readinessGate.enabled)";
            case 404 -> "HTTP 404: the pod is gone";
            case 409 -> "HTTP 409: the pod was recreated under the same name (another uid); its successor is judged "
                    + "on its own";
            default -> "HTTP " + e.getCode() + (e.getResponseBody() == null ? "" : ": " + e.getResponseBody());
        };
    }
}
