package io.moemesh.router.kubernetes;

import com.google.gson.JsonObject;
import io.kubernetes.client.openapi.ApiClient;
import io.kubernetes.client.openapi.ApiException;
import io.kubernetes.client.openapi.apis.CoreV1Api;
import io.moemesh.router.discovery.ConfigMapPublisher;
import io.moemesh.router.discovery.PlacementConfigMap;
import java.util.Base64;

/**
 * The placement ConfigMap through the official client: GET it, then PUT it back with the resourceVersion read (the API
 * server answers 409 Conflict when it changed meanwhile). One PUT sets the placement's form and removes the other
 * form's key ({@code data.placement.json} or {@code binaryData.placement.json.gz}), so both change atomically. It is
 * never created (the chart creates it empty and the router's Role allows only get and update on it, by name), so a
 * 404, like a 403 or 422, is a {@link RefusedException}: not retried. Used from one thread (the publisher's).
 *
 * <p>The ConfigMap is read and written as a plain JSON tree ({@link RawApi}): members a newer Kubernetes adds neither
 * fail the read nor get dropped by the write, which changes only the two keys and the resourceVersion.
 */
public final class KubernetesPlacementConfigMap implements PlacementConfigMap {
    private final RawApi raw;
    private final CoreV1Api api;
    private final String namespace;
    private final String name;
    private JsonObject last;

    public KubernetesPlacementConfigMap(ApiClient client, String namespace, String name) {
        this.raw = new RawApi(client);
        this.api = new CoreV1Api(client);
        this.namespace = namespace;
        this.name = name;
    }

    @Override
    public Stored read() {
        try {
            JsonObject cm = raw.send(api.readNamespacedConfigMap(name, namespace).buildCall(null));
            last = cm;
            String json = LenientJson.string(LenientJson.object(cm, "data", "ConfigMap"), ConfigMapPublisher.KEY,
                    "data");
            String gzip = LenientJson.string(LenientJson.object(cm, "binaryData", "ConfigMap"),
                    ConfigMapPublisher.GZIP_KEY, "binaryData");
            return new Stored(json, gzip == null ? null : decode(gzip), PodJson.resourceVersion(cm));
        } catch (ApiException e) {
            throw failure("reading", "get", e);
        }
    }

    /** binaryData's value: base64 (standard, padded), as encoding/json writes Go's []byte. */
    private byte[] decode(String base64) {
        try {
            return Base64.getDecoder().decode(base64);
        } catch (IllegalArgumentException e) {
            throw new LenientJson.Malformed("ConfigMap " + namespace + "/" + name + ": binaryData."
                    + ConfigMapPublisher.GZIP_KEY + " is not base64 (" + e.getMessage() + ")");
        }
    }

    @Override
    public void replace(Content content, String resourceVersion) throws ConflictException {
        if (last == null) {
            throw new IllegalStateException("ConfigMap " + namespace + "/" + name + " was not read before writing it");
        }
        JsonObject cm = RawApi.withoutManagedFields(last);
        JsonObject data = LenientJson.object(cm, "data", "ConfigMap");
        JsonObject binary = LenientJson.object(cm, "binaryData", "ConfigMap");
        data = data == null ? new JsonObject() : data;
        binary = binary == null ? new JsonObject() : binary;
        if (content.isGzip()) {
            binary.addProperty(ConfigMapPublisher.GZIP_KEY, Base64.getEncoder().encodeToString(content.gzip()));
            data.remove(ConfigMapPublisher.KEY);
        } else {
            data.addProperty(ConfigMapPublisher.KEY, content.json());
            binary.remove(ConfigMapPublisher.GZIP_KEY);
        }
        // An empty map is left out: the API server drops empty maps anyway, and leaving it out keeps the PUT minimal.
        put(cm, "data", data);
        put(cm, "binaryData", binary);
        JsonObject meta = LenientJson.object(cm, "metadata", "ConfigMap");
        if (meta == null) {
            meta = new JsonObject();
            cm.add("metadata", meta);
        }
        meta.addProperty("resourceVersion", resourceVersion);
        try {
            last = raw.send(raw.write("PUT", "/api/v1/namespaces/" + raw.escape(namespace) + "/configmaps/"
                    + raw.escape(name), cm));
        } catch (ApiException e) {
            if (e.getCode() == 409) {
                throw new ConflictException("ConfigMap " + namespace + "/" + name + " changed since resourceVersion "
                        + resourceVersion, e);
            }
            throw failure("writing", "update", e);
        }
    }

    private static void put(JsonObject cm, String member, JsonObject map) {
        if (map.isEmpty()) {
            cm.remove(member);
        } else {
            cm.add(member, map);
        }
    }

    /**
     * A {@link RefusedException} for what sending again cannot fix (4xx but 408 Request Timeout, 409 Conflict, 429
     * Too Many Requests), naming the rule or value to fix; else (no HTTP answer: I/O or timeout; 5xx; 408; 429) an
     * IllegalStateException, which the publisher retries.
     */
    private RuntimeException failure(String doing, String verb, ApiException e) {
        int code = e.getCode();
        String what = doing + " ConfigMap " + namespace + "/" + name + " failed: ";
        if (code < 400 || code >= 500 || code == 408 || code == 409 || code == 429) {
            return new IllegalStateException(what + (code == 0 ? e.getMessage() : "HTTP " + code), e);
        }
        String why = switch (code) {
            case 401 -> "HTTP 401 Unauthorized: the API server does not accept the router's credentials (its service"
                    + " account token, or moemesh.router.discovery.api-server's)";
            case 403 -> "HTTP 403 Forbidden: the router's Role must allow \"" + verb + "\" on configmaps named \""
                    + name + "\" in namespace " + namespace + " (the chart's router Role: apiGroups [\"\"], resources"
                    + " [configmaps], resourceNames [" + name + "], verbs [get, update])";
            case 404 -> "HTTP 404: it does not exist; the router never creates it (the chart does, empty): install the"
                    + " chart's ConfigMap again (or kubectl create configmap " + name + " -n " + namespace + "), or set"
                    + " moemesh.router.discovery.config-map to the existing one";
            default -> "HTTP " + code + ": the API server refused it (" + e.getResponseBody() + ")";
        };
        return new RefusedException(what + why, e);
    }
}
