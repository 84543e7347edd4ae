package io.moemesh.router.kubernetes;

import com.google.gson.JsonObject;
import io.kubernetes.client.openapi.ApiClient;
import io.kubernetes.client.openapi.ApiException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Map;
import okhttp3.Call;

/**
 * Kubernetes API calls through the official client's connection (its base path, credentials, TLS and timeouts) whose
 * objects are plain JSON trees, not client-java's generated models: those refuse any member they do not define, so a
 * newer API server's answer would fail (see {@link LenientJson}), and writing a model back would drop the members it
 * does not know. A read-modify-write here (the placement ConfigMap, the Lease) sends the object back as it was read,
 * members the router does not know included, with only its own members changed.
 */
final class RawApi {
    /** The credential the generated APIs name: the bearer token of the in-cluster configuration (if any). */
    private static final String[] AUTH = {"BearerToken"};

    private final ApiClient client;

    RawApi(ApiClient client) {
        this.client = client;
    }

    /**
     * Executes {@code call} (a generated API's {@code buildCall(null)}, or {@link #write}) and answers its body as a
     * JSON tree: read with Gson's own JsonElement adapter, which never consults the generated models.
     *
     * @throws ApiException             an HTTP error (its code and body) or no answer (code 0)
     * @throws LenientJson.Malformed    the body is not a JSON object
     */
    JsonObject send(Call call) throws ApiException {
        JsonObject body = client.<JsonObject>execute(call, JsonObject.class).getData();
        if (body == null) {
            throw new LenientJson.Malformed("the API server answered " + call.request().method() + " "
                    + call.request().url().encodedPath() + " without a JSON object");
        }
        return body;
    }

    /** A {@code PUT} or {@code POST} of {@code body} to {@code path} (escape its names with {@link #escape}). */
    Call write(String method, String path, JsonObject body) throws ApiException {
        Map<String, String> headers = new HashMap<>();
        headers.put("Accept", "application/json");
        headers.put("Content-Type", "application/json");
        return client.buildCall(null, path, method, new ArrayList<>(), new ArrayList<>(), body, headers,
                new HashMap<>(), new HashMap<>(), AUTH, null);
    }

    /** {@code name} as a path segment. */
    String escape(String name) {
        return client.escapeString(name);
    }

    /**
     * {@code object} without {@code metadata.managedFields}, as the generated models sent it (client-java leaves them
     * out unless {@code kubernetes.client.includeManagedFields}): an update that omits them keeps the API server's
     * record of field managers (https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management).
     */
    static JsonObject withoutManagedFields(JsonObject object) {
        JsonObject copy = object.deepCopy();
        if (copy.get("metadata") instanceof JsonObject meta) {
            meta.remove("managedFields");
        }
        return copy;
    }
}
