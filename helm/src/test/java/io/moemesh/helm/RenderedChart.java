package io.moemesh.helm;

import io.kubernetes.client.openapi.models.V1ConfigMap;
import io.kubernetes.client.openapi.models.V1Container;
import io.kubernetes.client.openapi.models.V1Deployment;
import io.kubernetes.client.openapi.models.V1ObjectMeta;
import io.kubernetes.client.openapi.models.V1PersistentVolumeClaim;
import io.kubernetes.client.openapi.models.V1PodDisruptionBudget;
import io.kubernetes.client.openapi.models.V1PodTemplateSpec;
import io.kubernetes.client.openapi.models.V1Role;
import io.kubernetes.client.openapi.models.V1RoleBinding;
import io.kubernetes.client.openapi.models.V1Service;
import io.kubernetes.client.openapi.models.V1ServiceAccount;
import io.kubernetes.client.openapi.models.V1StatefulSet;
import io.kubernetes.client.openapi.models.V2HorizontalPodAutoscaler;
import io.kubernetes.client.util.Yaml;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * What {@code helm template} rendered, read into the official Kubernetes client's model classes (custom resources
 * such as cert-manager's Certificate, which the client has no class for, stay maps). Reading fails on a field the
 * model does not know, so a misspelt or misplaced field fails the tests too.
 */
record RenderedChart(List<Object> objects, List<Map<String, Object>> customResources) {

    /**
     * A pod template with what owns it, for checks over every workload; {@code claimTemplates} are the volumes a
     * StatefulSet's volumeClaimTemplates add to each pod.
     */
    record Workload(String kind, String name, V1PodTemplateSpec template, List<String> claimTemplates) {
        List<V1Container> allContainers() {
            List<V1Container> all = new ArrayList<>(template.getSpec().getContainers());
            Optional.ofNullable(template.getSpec().getInitContainers()).ifPresent(all::addAll);
            return all;
        }
    }

    @SuppressWarnings("unchecked")
    static RenderedChart parse(String manifests) {
        List<Object> objects = new ArrayList<>();
        List<Map<String, Object>> custom = new ArrayList<>();
        org.yaml.snakeyaml.Yaml plain = new org.yaml.snakeyaml.Yaml();
        for (String doc : manifests.split("(?m)^---\\s*$")) {
            Object raw = plain.load(doc);
            if (!(raw instanceof Map<?, ?> map)) {
                continue; // a document of comments only
            }
            String apiVersion = String.valueOf(map.get("apiVersion"));
            if (apiVersion.startsWith("cert-manager.io/")) {
                custom.add(new LinkedHashMap<>((Map<String, Object>) map));
            } else {
                try {
                    objects.add(Yaml.load(doc));
                } catch (Exception e) {
                    throw new AssertionError("rendered document does not read as a Kubernetes object: " + e
                            + "\n" + doc, e);
                }
            }
        }
        return new RenderedChart(objects, custom);
    }

    <T> List<T> all(Class<T> type) {
        return objects.stream().filter(type::isInstance).map(type::cast).toList();
    }

    <T> T one(Class<T> type, String name) {
        return all(type).stream().filter(o -> name.equals(meta(o).getName())).findFirst()
                .orElseThrow(() -> new AssertionError("no " + type.getSimpleName() + " named " + name
                        + "; rendered: " + names()));
    }

    <T> Optional<T> find(Class<T> type, String name) {
        return all(type).stream().filter(o -> name.equals(meta(o).getName())).findFirst();
    }

    List<Workload> workloads() {
        return Stream.concat(
                all(V1Deployment.class).stream()
                        .map(d -> new Workload("Deployment", d.getMetadata().getName(), d.getSpec().getTemplate(),
                                List.of())),
                all(V1StatefulSet.class).stream()
                        .map(s -> new Workload("StatefulSet", s.getMetadata().getName(), s.getSpec().getTemplate(),
                                Optional.ofNullable(s.getSpec().getVolumeClaimTemplates()).orElse(List.of())
                                        .stream().map(c -> c.getMetadata().getName()).toList())))
                .toList();
    }

    List<String> names() {
        return objects.stream().map(o -> o.getClass().getSimpleName() + "/" + meta(o).getName()).toList();
    }

    static V1ObjectMeta meta(Object o) {
        return switch (o) {
            case V1Deployment d -> d.getMetadata();
            case V1StatefulSet s -> s.getMetadata();
            case V1Service s -> s.getMetadata();
            case V1ConfigMap c -> c.getMetadata();
            case V1ServiceAccount a -> a.getMetadata();
            case V1Role r -> r.getMetadata();
            case V1RoleBinding b -> b.getMetadata();
            case V2HorizontalPodAutoscaler h -> h.getMetadata();
            case V1PodDisruptionBudget p -> p.getMetadata();
            case V1PersistentVolumeClaim c -> c.getMetadata();
            default -> throw new AssertionError("the chart renders an unexpected kind: " + o.getClass());
        };
    }
}
