package io.moemesh.helm;

import com.sun.net.httpserver.HttpServer;
import io.kubernetes.client.openapi.JSON;
import io.kubernetes.client.openapi.models.V1Deployment;
import io.kubernetes.client.openapi.models.V1ObjectMeta;
import io.kubernetes.client.openapi.models.V1PersistentVolumeClaim;
import io.kubernetes.client.openapi.models.V1StatefulSet;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.zip.GZIPOutputStream;

/**
 * Just enough of a Kubernetes API server, on loopback, for {@code helm upgrade --dry-run=server} and
 * {@code helm install --dry-run=server} of the chart: the only way to run the templates' {@code lookup} (which finds
 * nothing in {@code helm template} and lint) without a cluster. It serves discovery of the kinds the chart renders,
 * Helm's record of a deployed release {@code moemesh} in namespace {@code serving} (revision 1, no manifest: every
 * rendered object is new to Helm, and one that exists carries Helm's ownership labels and annotations, so Helm adopts
 * it as an upgrade would; {@link #withoutRelease} serves none, as after {@code helm uninstall}), and the objects
 * given to {@link #live}; every other path is 404 Not Found. A dry run writes nothing, so nothing else is needed.
 */
final class FakeKubernetesApi implements AutoCloseable {
    private static final JSON JSON = new JSON();
    private static final String NOT_FOUND =
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"reason\":\"NotFound\",\"code\":404}";

    private final Map<String, String> responses = new ConcurrentHashMap<>();
    private final HttpServer server;

    /** With a deployed release {@code moemesh}: what {@code helm upgrade} finds. */
    FakeKubernetesApi() {
        this(true);
    }

    /** Without any release record: what a first {@code helm install} (or one after an uninstall) finds. */
    static FakeKubernetesApi withoutRelease() {
        return new FakeKubernetesApi(false);
    }

    private FakeKubernetesApi(boolean deployedRelease) {
        responses.put("/version", "{\"major\":\"1\",\"minor\":\"31\",\"gitVersion\":\"v1.31.0\"}");
        responses.put("/api", "{\"kind\":\"APIVersions\",\"versions\":[\"v1\"]}");
        responses.put("/apis", "{\"kind\":\"APIGroupList\",\"apiVersion\":\"v1\",\"groups\":["
                + String.join(",", group("apps", "v1"), group("policy", "v1"), group("autoscaling", "v2"),
                group("rbac.authorization.k8s.io", "v1"), group("cert-manager.io", "v1")) + "]}");
        resources("/api/v1", "v1", "configmaps", "ConfigMap", "services", "Service", "serviceaccounts",
                "ServiceAccount", "persistentvolumeclaims", "PersistentVolumeClaim", "secrets", "Secret", "pods",
                "Pod");
        resources("/apis/apps/v1", "apps/v1", "statefulsets", "StatefulSet", "deployments", "Deployment");
        resources("/apis/policy/v1", "policy/v1", "poddisruptionbudgets", "PodDisruptionBudget");
        resources("/apis/autoscaling/v2", "autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler");
        resources("/apis/rbac.authorization.k8s.io/v1", "rbac.authorization.k8s.io/v1", "roles", "Role",
                "rolebindings", "RoleBinding");
        resources("/apis/cert-manager.io/v1", "cert-manager.io/v1", "certificates", "Certificate");
        // Helm's release storage (the Secret driver): the list it reads the release history from.
        responses.put("/api/v1/namespaces/" + Chart.NAMESPACE + "/secrets", deployedRelease ? releaseSecrets()
                : "{\"kind\":\"SecretList\",\"apiVersion\":\"v1\",\"metadata\":{},\"items\":[]}");
        try {
            server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        server.createContext("/", exchange -> {
            try (exchange) {
                String body = "GET".equals(exchange.getRequestMethod())
                        ? responses.get(exchange.getRequestURI().getPath()) : null;
                byte[] bytes = (body != null ? body : NOT_FOUND).getBytes(StandardCharsets.UTF_8);
                exchange.getResponseHeaders().add("Content-Type", "application/json");
                exchange.sendResponseHeaders(body != null ? 200 : 404, bytes.length);
                exchange.getResponseBody().write(bytes);
            }
        });
        server.start();
    }

    /**
     * Makes a StatefulSet or Deployment of the official client's model live in {@link Chart#NAMESPACE}, owned by the
     * release as Helm marks what it installed; or a PersistentVolumeClaim, as a StatefulSet's controller makes them
     * (no Helm marks: Helm never owned it, and {@code helm uninstall} leaves it).
     */
    FakeKubernetesApi live(Object object) {
        String path = switch (object) {
            case V1StatefulSet s -> "/apis/apps/v1/namespaces/" + Chart.NAMESPACE + "/statefulsets/";
            case V1Deployment d -> "/apis/apps/v1/namespaces/" + Chart.NAMESPACE + "/deployments/";
            case V1PersistentVolumeClaim c -> "/api/v1/namespaces/" + Chart.NAMESPACE + "/persistentvolumeclaims/";
            default -> throw new IllegalArgumentException("not an object the chart meets: " + object.getClass());
        };
        V1ObjectMeta metadata = RenderedChart.meta(object).namespace(Chart.NAMESPACE);
        if (!(object instanceof V1PersistentVolumeClaim)) {
            metadata.putLabelsItem("app.kubernetes.io/managed-by", "Helm")
                    .putAnnotationsItem("meta.helm.sh/release-name", Chart.RELEASE)
                    .putAnnotationsItem("meta.helm.sh/release-namespace", Chart.NAMESPACE);
        }
        responses.put(path + metadata.getName(), JSON.serialize(object));
        return this;
    }

    /** A kubeconfig whose one context is this server, namespace {@link Chart#NAMESPACE}. */
    String kubeconfig() {
        return """
                apiVersion: v1
                kind: Config
                clusters: [{name: fake, cluster: {server: "http://127.0.0.1:%d"}}]
                users: [{name: fake, user: {token: fake}}]
                contexts: [{name: fake, context: {cluster: fake, user: fake, namespace: %s}}]
                current-context: fake
                """.formatted(server.getAddress().getPort(), Chart.NAMESPACE);
    }

    @Override
    public void close() {
        server.stop(0);
    }

    private static String group(String group, String version) {
        String gv = "{\"groupVersion\":\"" + group + "/" + version + "\",\"version\":\"" + version + "\"}";
        return "{\"name\":\"" + group + "\",\"versions\":[" + gv + "],\"preferredVersion\":" + gv + "}";
    }

    /** An APIResourceList at {@code path}: pairs of plural resource name and kind, all namespaced. */
    private void resources(String path, String groupVersion, String... namesAndKinds) {
        StringBuilder list = new StringBuilder();
        for (int i = 0; i < namesAndKinds.length; i += 2) {
            list.append(i == 0 ? "" : ",").append("{\"name\":\"").append(namesAndKinds[i])
                    .append("\",\"singularName\":\"\",\"namespaced\":true,\"kind\":\"").append(namesAndKinds[i + 1])
                    .append("\",\"verbs\":[\"get\",\"list\",\"create\",\"update\",\"patch\",\"delete\"]}");
        }
        responses.put(path, "{\"kind\":\"APIResourceList\",\"apiVersion\":\"v1\",\"groupVersion\":\"" + groupVersion
                + "\",\"resources\":[" + list + "]}");
    }

    /**
     * Helm's Secret driver stores a release as the Secret's data key {@code release}: base64 of the gzipped release
     * JSON (then base64 once more, as every Secret's data is in the API's JSON).
     */
    private static String releaseSecrets() {
        String release = """
                {"name":"%s","namespace":"%s","version":1,
                 "info":{"status":"deployed",
                         "first_deployed":"2026-01-01T00:00:00Z","last_deployed":"2026-01-01T00:00:00Z"},
                 "chart":{"metadata":{"apiVersion":"v2","name":"moemesh","version":"0.1.0","appVersion":"0.1.0"}},
                 "config":{},"manifest":""}""".formatted(Chart.RELEASE, Chart.NAMESPACE);
        ByteArrayOutputStream gzipped = new ByteArrayOutputStream();
        try (GZIPOutputStream gzip = new GZIPOutputStream(gzipped)) {
            gzip.write(release.getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        Base64.Encoder base64 = Base64.getEncoder();
        String data = base64.encodeToString(base64.encode(gzipped.toByteArray()));
        return """
                {"kind":"SecretList","apiVersion":"v1","metadata":{},"items":[{"metadata":{
                 "name":"sh.helm.release.v1.%1$s.v1","namespace":"%2$s",
                 "labels":{"name":"%1$s","owner":"helm","status":"deployed","version":"1"}},
                 "type":"helm.sh/release.v1","data":{"release":"%3$s"}}]}""".formatted(Chart.RELEASE, Chart.NAMESPACE,
                data);
    }
}
