package io.moemesh.router.kubernetes;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.fabric8.kubernetes.client.server.mock.KubernetesCrudDispatcher;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.fabric8.mockwebserver.Context;
import io.fabric8.mockwebserver.MockWebServer;
import io.fabric8.mockwebserver.dsl.HttpMethod;
import io.fabric8.mockwebserver.http.Buffer;
import io.fabric8.mockwebserver.http.Headers;
import io.fabric8.mockwebserver.http.MockResponse;
import io.fabric8.mockwebserver.http.RecordedRequest;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * fabric8's mock API server in CRUD mode, plus what its PATCH handler lacks and the readiness gate uses: a strategic
 * merge patch of a pod's status (it answers 415 to one). As a real API server does, the patch's
 * {@code status.conditions} are merged into the pod's by {@code type}, the list's patch merge key (PodStatus in
 * k8s.io/api/core/v1/types.go), so the kubelet's conditions stay; the merged list is then stored through the CRUD
 * dispatcher's own JSON patch support (watch events included). A patch whose {@code metadata.uid} is not the pod's is
 * refused with 409 Conflict, as the API server's uid precondition does. Every strategic merge patch is recorded as the client
 * sent it, and {@link #refuse} makes the next ones fail with 403 Forbidden (a Role without {@code pods/status}).
 */
final class StatusPatchingDispatcher extends KubernetesCrudDispatcher {
    static final String STRATEGIC_MERGE = "application/strategic-merge-patch+json";

    /** One PATCH request as received. */
    record Patch(String path, String contentType, String body) {
    }

    final List<Patch> statusPatches = new CopyOnWriteArrayList<>();
    /** Strategic merge patches still to refuse with 403. */
    final AtomicInteger refuse = new AtomicInteger();

    /** A started mock API server (plain HTTP) backed by a new dispatcher; close with {@code destroy()}. */
    static KubernetesMockServer start(StatusPatchingDispatcher dispatcher) {
        KubernetesMockServer server = new KubernetesMockServer(new Context(), new MockWebServer(), new HashMap<>(),
                dispatcher, false);
        server.init();
        return server;
    }

    @Override
    public MockResponse handlePatch(RecordedRequest r) {
        String type = r.getHeader("Content-Type");
        if (type == null || !type.startsWith(STRATEGIC_MERGE)) {
            return super.handlePatch(r);
        }
        String body = r.getUtf8Body(); // read once: it consumes the request's buffer
        statusPatches.add(new Patch(r.getPath(), type, body));
        String path = r.getPath().replaceAll("\\?.*$", "");
        if (!path.matches("/api/v1/namespaces/[^/]+/pods/[^/]+/status")) {
            return new MockResponse().setResponseCode(415).setBody("strategic merge: pod status only in this mock");
        }
        if (refuse.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
            return new MockResponse().setResponseCode(403).setBody("{\"kind\":\"Status\",\"apiVersion\":\"v1\","
                    + "\"status\":\"Failure\",\"reason\":\"Forbidden\",\"code\":403}");
        }
        MockResponse current = handleGet(path.substring(0, path.length() - "/status".length()));
        if (current.code() != 200) {
            return current;
        }
        JsonObject pod = JsonParser.parseString(new String(current.getBody().getBytes(), StandardCharsets.UTF_8))
                .getAsJsonObject();
        // The uid precondition a real API server checks: a patch naming another uid is refused with 409 Conflict.
        JsonObject sentMetadata = JsonParser.parseString(body).getAsJsonObject().getAsJsonObject("metadata");
        if (sentMetadata != null && sentMetadata.has("uid") && !sentMetadata.get("uid").getAsString()
                .equals(pod.getAsJsonObject("metadata").get("uid").getAsString())) {
            return new MockResponse().setResponseCode(409).setBody("{\"kind\":\"Status\",\"apiVersion\":\"v1\","
                    + "\"status\":\"Failure\",\"reason\":\"Conflict\",\"code\":409}");
        }
        JsonArray merged = new JsonArray();
        JsonObject status = pod.has("status") ? pod.getAsJsonObject("status") : new JsonObject();
        if (status.has("conditions")) {
            status.getAsJsonArray("conditions").forEach(merged::add);
        }
        JsonArray patched = JsonParser.parseString(body).getAsJsonObject().getAsJsonObject("status")
                .getAsJsonArray("conditions");
        for (JsonElement c : patched) {
            String conditionType = c.getAsJsonObject().get("type").getAsString();
            int at = -1;
            for (int i = 0; i < merged.size(); i++) {
                if (conditionType.equals(merged.get(i).getAsJsonObject().get("type").getAsString())) {
                    at = i;
                }
            }
            if (at >= 0) {
                merged.set(at, c);
            } else {
                merged.add(c);
            }
        }
        JsonObject op = new JsonObject();
        op.addProperty("op", "add"); // "add" of an object member replaces it when there
        op.addProperty("path", status.has("conditions") ? "/status/conditions" : "/status");
        if (status.has("conditions")) {
            op.add("value", merged);
        } else {
            JsonObject withConditions = status.deepCopy();
            withConditions.add("conditions", merged);
            op.add("value", withConditions);
        }
        JsonArray jsonPatch = new JsonArray();
        jsonPatch.add(op);
        return super.handlePatch(new RecordedRequest(r.getHttpVersion(), HttpMethod.PATCH, r.getPath(),
                Headers.builder().add("Content-Type", "application/json-patch+json").build(),
                new Buffer(jsonPatch.toString().getBytes(StandardCharsets.UTF_8))));
    }
}
