package io.moemesh.helm;

import io.kubernetes.client.openapi.models.V1ConfigMap;
import io.kubernetes.client.openapi.models.V1Container;
import io.kubernetes.client.openapi.models.V1EnvFromSource;
import io.kubernetes.client.openapi.models.V1EnvVar;
import io.kubernetes.client.openapi.models.V1EnvVarSource;
import io.kubernetes.client.openapi.models.V1KeyToPath;
import io.kubernetes.client.openapi.models.V1PodSpec;
import io.kubernetes.client.openapi.models.V1Volume;
import io.kubernetes.client.openapi.models.V1VolumeMount;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * The environment a container of the rendered chart starts with, as the kubelet builds it: first every key of the
 * ConfigMaps in {@code envFrom} (with their prefix), then {@code env}, which wins over {@code envFrom}; {@code $(NAME)}
 * in a value expands to a variable defined before it. Values only known in a cluster stand in for what the kubelet
 * would put there: {@code fieldRef} paths by a value of their form (a pod name, a namespace, an IP), a Secret's key by
 * a placeholder naming it.
 *
 * <p>The settings records check some files at binding (the TLS certificate and key must be readable), so the
 * container's mounts are laid out under a scratch directory standing in for the container's root: each mount path
 * becomes a directory holding the files its volume gives (a ConfigMap's rendered keys, a Secret's {@code items}, or
 * for a Secret without items the keys of a TLS Secret with its CA, {@code tls.crt}, {@code tls.key} and
 * {@code ca.crt}, which cert-manager writes and docs/kubernetes.md asks of an existing Secret), and every value that
 * is an absolute path under a mount (or a comma-separated list of them) is moved under that directory. A path the
 * chart gets wrong (a key the volume does not have) then fails the binding as it would fail the pod.
 */
final class ContainerEnvironment {
    private static final Pattern REFERENCE = Pattern.compile("\\$\\(([A-Za-z_][A-Za-z0-9_]*)\\)");
    private static final Map<String, String> FIELD_SAMPLES = Map.of(
            "metadata.name", Chart.RELEASE + "-pod-0",
            "metadata.namespace", Chart.NAMESPACE,
            "status.podIP", "10.244.0.17",
            "status.hostIP", "10.0.0.3",
            "spec.nodeName", "node-1",
            "spec.serviceAccountName", Chart.RELEASE + "-router");

    private ContainerEnvironment() {
    }

    /**
     * @throws AssertionError when an envFrom ConfigMap is not rendered or a value source is of an unknown kind
     */
    static Map<String, String> of(RenderedChart chart, V1Container c) {
        return of(chart, null, c, null);
    }

    /**
     * The environment with the container's mounts laid out under {@code root} (see the class comment); with a null
     * {@code root} nothing is laid out or moved.
     */
    static Map<String, String> of(RenderedChart chart, V1PodSpec pod, V1Container c, Path root) {
        Map<String, String> env = raw(chart, c);
        if (root == null) {
            return env;
        }
        List<String> mounts = layOut(chart, pod, c, root);
        env.replaceAll((name, value) -> Arrays.stream(value.split(",", -1))
                .map(v -> mounts.stream().anyMatch(m -> v.equals(m) || v.startsWith(m + "/"))
                        ? root + v : v)
                .collect(Collectors.joining(",")));
        return env;
    }

    /** Creates the files of {@code c}'s mounts under {@code root}; returns the mount paths. */
    private static List<String> layOut(RenderedChart chart, V1PodSpec pod, V1Container c, Path root) {
        List<String> mounts = new ArrayList<>();
        for (V1VolumeMount m : Optional.ofNullable(c.getVolumeMounts()).orElse(List.of())) {
            mounts.add(m.getMountPath());
            Path dir = root.resolve(m.getMountPath().substring(1));
            Optional<V1Volume> volume = Optional.ofNullable(pod.getVolumes()).orElse(List.of()).stream()
                    .filter(v -> v.getName().equals(m.getName())).findFirst();
            List<String> files = new ArrayList<>();
            // The client's model reads an absent items list as empty.
            volume.map(V1Volume::getSecret).ifPresent(s -> files.addAll(isEmpty(s.getItems())
                    ? List.of("tls.crt", "tls.key", "ca.crt")
                    : s.getItems().stream().map(V1KeyToPath::getPath).toList()));
            volume.map(V1Volume::getConfigMap).ifPresent(cm -> files.addAll(!isEmpty(cm.getItems())
                    ? cm.getItems().stream().map(V1KeyToPath::getPath).toList()
                    : chart.find(V1ConfigMap.class, cm.getName()).map(V1ConfigMap::getData).orElse(Map.of())
                            .keySet().stream().toList()));
            try {
                Files.createDirectories(dir);
                for (String f : files) {
                    Path file = dir.resolve(f);
                    Files.createDirectories(file.getParent());
                    Files.writeString(file, "stand-in for " + m.getMountPath() + "/" + f);
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return mounts;
    }

    private static boolean isEmpty(List<?> list) {
        return list == null || list.isEmpty();
    }

    private static Map<String, String> raw(RenderedChart chart, V1Container c) {
        Map<String, String> env = new LinkedHashMap<>();
        for (V1EnvFromSource from : Optional.ofNullable(c.getEnvFrom()).orElse(List.of())) {
            if (from.getConfigMapRef() == null) {
                throw new AssertionError(c.getName() + ": envFrom other than a ConfigMap the chart renders: " + from);
            }
            V1ConfigMap cm = chart.one(V1ConfigMap.class, from.getConfigMapRef().getName());
            String prefix = Optional.ofNullable(from.getPrefix()).orElse("");
            Optional.ofNullable(cm.getData()).orElse(Map.of()).forEach((k, v) -> env.put(prefix + k, v));
        }
        for (V1EnvVar e : Optional.ofNullable(c.getEnv()).orElse(List.of())) {
            env.put(e.getName(), e.getValueFrom() != null ? sample(c, e.getName(), e.getValueFrom())
                    : expand(Optional.ofNullable(e.getValue()).orElse(""), env));
        }
        return env;
    }

    private static String sample(V1Container c, String name, V1EnvVarSource from) {
        if (from.getFieldRef() != null) {
            String path = from.getFieldRef().getFieldPath();
            String v = FIELD_SAMPLES.get(path);
            if (v == null) {
                throw new AssertionError(c.getName() + " " + name + ": fieldRef " + path + " has no sample value here");
            }
            return v;
        }
        if (from.getSecretKeyRef() != null) {
            return "secret-" + from.getSecretKeyRef().getName() + "-" + from.getSecretKeyRef().getKey();
        }
        if (from.getConfigMapKeyRef() != null) {
            return "configmap-" + from.getConfigMapKeyRef().getName() + "-" + from.getConfigMapKeyRef().getKey();
        }
        if (from.getResourceFieldRef() != null) {
            return "1";
        }
        throw new AssertionError(c.getName() + " " + name + ": unknown valueFrom " + from);
    }

    /** The kubelet's $(VAR) expansion: a defined variable is replaced, anything else stays as written. */
    private static String expand(String value, Map<String, String> defined) {
        Matcher m = REFERENCE.matcher(value);
        StringBuilder out = new StringBuilder();
        while (m.find()) {
            String v = defined.get(m.group(1));
            m.appendReplacement(out, Matcher.quoteReplacement(v != null ? v : m.group()));
        }
        m.appendTail(out);
        return out.toString();
    }
}
