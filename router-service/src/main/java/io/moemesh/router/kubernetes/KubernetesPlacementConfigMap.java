package io.moemesh.router.kubernetes;

import io.kubernetes.client.openapi.ApiClient;
import io.kubernetes.client.openapi.ApiException;
import io.kubernetes.client.openapi.apis.CoreV1Api;
import io.kubernetes.client.openapi.models.V1ConfigMap;
import io.moemesh.router.discovery.ConfigMapPublisher;
import io.moemesh.router.discovery.PlacementConfigMap;
import java.util.HashMap;
import java.util.Map;

/**
 * The placement ConfigMap through the official client: GET it, then PUT it back with the resourceVersion read (the API
 * server answers 409 Conflict when it changed meanwhile). One PUT sets the placement's form and removes the other
 * form's key ({@code data.placement.json} or {@code binaryData.placement.json.gz}), so both change atomically. It is
 * never created (the chart creates it empty and the router's Role allows only get, update and patch on it, by name),
 * so a 404, like a 403 or 422, is a {@link RefusedException}: not retried. Used from one thread (the publisher's).
 */
public final class KubernetesPlacementConfigMap implements PlacementConfigMap {
    private final CoreV1Api api;
    private final String namespace;
    private final String name;
    private V1ConfigMap last;

    public KubernetesPlacementConfigMap(ApiClient client, String namespace, String name) {
        this.api = new CoreV1Api(client);
        this.namespace = namespace;
        this.name = name;
    }

    @Override
    public Stored read() {
        try {
            V1ConfigMap cm = api.readNamespacedConfigMap(name, namespace).execute();
            last = cm;
            Map<String, String> data = cm.getData();
            Map<String, byte[]> binary = cm.getBinaryData();
            return new Stored(data == null ? null : data.get(ConfigMapPublisher.KEY),
                    binary == null ? null : binary.get(ConfigMapPublisher.GZIP_KEY),
                    cm.getMetadata() == null ? null : cm.getMetadata().getResourceVersion());
        } catch (ApiException e) {
            throw failure("reading", "get", e);
        }
    }

    @Override
    public void replace(Content content, String resourceVersion) throws ConflictException {
        V1ConfigMap cm = last;
        if (cm == null) {
            throw new IllegalStateException("ConfigMap " + namespace + "/" + name + " was not read before writing it");
        }
        Map<String, String> data = new HashMap<>(cm.getData() == null ? Map.of() : cm.getData());
        Map<String, byte[]> binary = new HashMap<>(cm.getBinaryData() == null ? Map.of() : cm.getBinaryData());
        if (content.isGzip()) {
            binary.put(ConfigMapPublisher.GZIP_KEY, content.gzip());
            data.remove(ConfigMapPublisher.KEY);
        } else {
            data.put(ConfigMapPublisher.KEY, content.json());
            binary.remove(ConfigMapPublisher.GZIP_KEY);
        }
        // An empty map is sent as null: the API server drops empty maps anyway, and null keeps the PUT minimal.
        cm.setData(data.isEmpty() ? null : data);
        cm.setBinaryData(binary.isEmpty() ? null : binary);
        cm.getMetadata().setResourceVersion(resourceVersion);
        try {
            last = api.replaceNamespacedConfigMap(name, namespace, cm).execute();
        } catch (ApiException e) {
            if (e.getCode() == 409) {
                throw new ConflictException("ConfigMap " + namespace + "/" + name + " changed since resourceVersion "
                        + resourceVersion, e);
            }
            throw failure("writing", "update", e);
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
                    + " [configmaps], resourceNames [" + name + "], verbs [get, update, patch])";
            case 404 -> "HTTP 404: it does not exist; the router never creates it (the chart does, empty): install the"
                    + " chart's ConfigMap again (or kubectl create configmap " + name + " -n " + namespace + "), or set"
                    + " moemesh.router.discovery.config-map to the existing one";
            default -> "HTTP " + code + ": the API server refused it (" + e.getResponseBody() + ")";
        };
        return new RefusedException(what + why, e);
    }
}
