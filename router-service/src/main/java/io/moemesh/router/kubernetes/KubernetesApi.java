package io.moemesh.router.kubernetes;

import io.kubernetes.client.openapi.ApiClient;
import io.kubernetes.client.util.ClientBuilder;
import java.io.IOException;
import java.time.Duration;

/** The official client's connection to the API server: in-cluster (service account), or a given URL. */
public final class KubernetesApi {
    private KubernetesApi() {
    }

    /**
     * @param apiServer the API server's URL (no credentials: {@code kubectl proxy}, tests), or null/blank for the
     *                  in-cluster configuration (the pod's service account token and CA)
     * @param longestWatch how long a watch may stay silent: the read timeout is longer than it
     * @throws IllegalStateException when in-cluster is asked for outside a pod
     */
    public static ApiClient client(String apiServer, Duration longestWatch) {
        ApiClient client;
        if (apiServer == null || apiServer.isBlank()) {
            try {
                client = ClientBuilder.cluster().build();
            } catch (IOException | RuntimeException e) {
                throw new IllegalStateException("moemesh.router.discovery: no in-cluster Kubernetes configuration ("
                        + e.getMessage() + "); outside a pod set moemesh.router.discovery.api-server", e);
            }
        } else {
            client = new ApiClient().setBasePath(apiServer.strip().replaceAll("/+$", ""));
        }
        return client.setReadTimeout((int) longestWatch.plusSeconds(30).toMillis());
    }

    /** {@code client} with every call (connect, write, read) bounded by {@code timeout} in all. */
    public static ApiClient withCallTimeout(ApiClient client, Duration timeout) {
        return client.setHttpClient(client.getHttpClient().newBuilder().callTimeout(timeout).build());
    }
}
