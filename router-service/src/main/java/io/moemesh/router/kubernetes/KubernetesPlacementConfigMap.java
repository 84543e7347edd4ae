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
 * never created (the chart creates it empty and the router's Role allows only get, update and patch on it, by name).
 * Used from one thread (the publisher's).
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
            throw new IllegalStateException("reading ConfigMap " + namespace + "/" + name + " failed: " + explain(e), e);
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
            throw new IllegalStateException("writing ConfigMap " + namespace + "/" + name + " failed: " + explain(e), e);
        }
    }

    private static String explain(ApiException e) {
        return switch (e.getCode()) {
            case 0 -> e.getMessage();
            case 404 -> "HTTP 404: it does not exist (the chart creates it; the router only updates it)";
            case 403 -> "HTTP 403: the router's Role must allow get and update on it";
            case 422 -> "HTTP 422: the API server refused it (" + e.getResponseBody() + ")";
            default -> "HTTP " + e.getCode();
        };
    }
}
