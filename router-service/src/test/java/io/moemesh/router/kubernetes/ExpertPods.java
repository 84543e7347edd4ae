package io.moemesh.router.kubernetes;

import io.fabric8.kubernetes.api.model.ContainerBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import java.util.Map;

/** Expert-service pods as the chart renders them, written to the mock API server with fabric8's client. */
final class ExpertPods {
    static final String NAMESPACE = "moemesh";
    static final Map<String, String> LABELS = Map.of("app.kubernetes.io/name", "moemesh",
            "app.kubernetes.io/instance", "test", "app.kubernetes.io/component", "expert-service");
    static final String SELECTOR = "app.kubernetes.io/name=moemesh,app.kubernetes.io/instance=test,"
            + "app.kubernetes.io/component=expert-service";

    private ExpertPods() {
    }

    /** A pod with the chart's labels and annotations, container port {@code grpc} = {@code port} (null: none). */
    static PodBuilder pod(String name, Integer port) {
        ContainerBuilder c = new ContainerBuilder().withName("expert-service").withImage("moemesh/expert-service");
        if (port != null) {
            c.addNewPort().withName("grpc").withContainerPort(port).endPort();
        }
        c.addNewPort().withName("http").withContainerPort(9181).endPort();
        return new PodBuilder().withNewMetadata().withName(name).withNamespace(NAMESPACE).withLabels(LABELS)
                .withAnnotations(Map.of("moemesh.io/device", "gpu", "moemesh.io/gpus", "1")).endMetadata()
                .withNewSpec().withContainers(c.build()).endSpec().withNewStatus().withPhase("Pending").endStatus();
    }

    /** Running and Ready with {@code podIp} (its containers ready, as a kubelet reports both). */
    static Pod ready(Pod p, String podIp) {
        return new PodBuilder(p).editStatus().withPhase("Running").withPodIP(podIp).addNewCondition()
                .withType("ContainersReady").withStatus("True").endCondition().addNewCondition().withType("Ready")
                .withStatus("True").endCondition().endStatus().build();
    }

    static void create(KubernetesClient k8s, Pod p) {
        k8s.pods().inNamespace(NAMESPACE).resource(p).create();
    }

    /** Replaces the pod, status included (the mock stores the object as sent). */
    static void becomeReady(KubernetesClient k8s, String name, String podIp) {
        Pod p = k8s.pods().inNamespace(NAMESPACE).withName(name).get();
        k8s.pods().inNamespace(NAMESPACE).resource(ready(p, podIp)).update();
    }
}
