package io.moemesh.router.kubernetes;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.groups.Tuple.tuple;
import static org.awaitility.Awaitility.await;

import io.fabric8.mockwebserver.MockWebServer;
import io.fabric8.mockwebserver.http.Dispatcher;
import io.fabric8.mockwebserver.http.MockResponse;
import io.fabric8.mockwebserver.http.RecordedRequest;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.router.discovery.ExpertPod;
import io.moemesh.router.discovery.LabelSelector;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * What the pod discovery reads of a pod, through the official client from a scripted API server (fabric8's
 * MockWebServer): the pod list's JSON as a kubelet and the scheduler leave it.
 */
class KubernetesPodViewTest {
    static final Duration RESYNC = Duration.ofSeconds(30);

    final MockWebServer server = new MockWebServer();
    final List<List<Instance>> delivered = new CopyOnWriteArrayList<>();
    final List<List<ExpertPod>> pods = new CopyOnWriteArrayList<>();
    KubernetesPodDiscovery discovery;

    /** A Running pod on {@code node} with the given conditions (JSON objects) and the chart's readiness gate. */
    static String pod(String name, String node, String ip, String conditions) {
        return "{\"metadata\":{\"name\":\"" + name + "\",\"namespace\":\"moemesh\",\"resourceVersion\":\"10\","
                + "\"labels\":{\"app.kubernetes.io/name\":\"moemesh\",\"app.kubernetes.io/instance\":\"test\","
                + "\"app.kubernetes.io/component\":\"expert-service\"}},"
                + "\"spec\":{\"nodeName\":\"" + node + "\",\"readinessGates\":[{\"conditionType\":\"moemesh.io/placed\"}],"
                + "\"containers\":[{\"name\":\"expert-service\",\"ports\":[{\"name\":\"grpc\",\"containerPort\":9100}]}]},"
                + "\"status\":{\"phase\":\"Running\",\"podIP\":\"" + ip + "\",\"conditions\":[" + conditions + "]}}";
    }

    static String condition(String type, boolean status) {
        return "{\"type\":\"" + type + "\",\"status\":\"" + (status ? "True" : "False") + "\"}";
    }

    static String condition(String type, boolean status, String reason) {
        return "{\"type\":\"" + type + "\",\"status\":\"" + (status ? "True" : "False") + "\",\"reason\":\""
                + reason + "\"}";
    }

    /** {@link #pod} without the chart's readiness gate. */
    static String ungated(String name, String node, String ip, String conditions) {
        return pod(name, node, ip, conditions)
                .replace("\"readinessGates\":[{\"conditionType\":\"moemesh.io/placed\"}],", "");
    }

    void serve(String... items) {
        server.setDispatcher(new Dispatcher() {
            @Override
            public MockResponse dispatch(RecordedRequest r) {
                if (r.getPath().contains("watch=true")) {
                    return new MockResponse().setResponseCode(200).setBody("").setBodyDelay(Duration.ofMinutes(5));
                }
                return new MockResponse().setResponseCode(200).setHeader("Content-Type", "application/json")
                        .setBody("{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"10\"},"
                                + "\"items\":[" + String.join(",", items) + "]}");
            }
        });
        server.start();
        discovery = new KubernetesPodDiscovery(KubernetesApi.client("http://localhost:" + server.getPort(), RESYNC),
                "moemesh", LabelSelector.parse(ExpertPods.SELECTOR), 9100, RESYNC);
        discovery.onPods(pods::add);
        discovery.start(delivered::add);
    }

    @AfterEach
    void stop() {
        if (discovery != null) {
            discovery.close();
        }
        server.shutdown();
    }

    @Test
    void podWhoseContainersAreReady_butNotReadyForTheGate_isPlacedOn_inItsNodesFailureDomain() {
        // The readiness gate keeps Ready False until the router places on the pod: judged on Ready, the router would
        // never place on it (and the gate would never open). A pod not ready in its containers stays out.
        serve(pod("expert-0", "gpu-node-a", "10.0.0.5", condition("ContainersReady", true) + ","
                        + condition("Ready", false)),
                pod("expert-1", "gpu-node-b", "10.0.0.6", condition("ContainersReady", false) + ","
                        + condition("Ready", false)));
        await().atMost(Duration.ofSeconds(5)).until(() -> !delivered.isEmpty());
        assertThat(delivered.getFirst()).containsExactly(Instance.newBuilder().setId("expert-0")
                .setEndpoint("10.0.0.5:9100").setFailureDomain("gpu-node-a").build());
    }

    @Test
    void aPlacedPodOnALostNode_markedNotReadyByTheNodeController_isNotPlacedOn_thoughItsContainersLookReady() {
        // The node controller sets only Ready=False on the pods of a node it lost (keeping the reason, none on a pod
        // that was Ready); ContainersReady stays True until the eviction minutes later. expert-1 was never placed on
        // and is held back by the gate (the kubelet's reason), expert-2 just got the gate True and the kubelet has
        // not re-evaluated Ready yet: both are placed on.
        serve(pod("expert-0", "gpu-node-a", "10.0.0.5", condition("ContainersReady", true) + ","
                        + condition("Ready", false) + "," + condition(ExpertPod.PLACED, true)),
                pod("expert-1", "gpu-node-b", "10.0.0.6", condition("ContainersReady", true) + ","
                        + condition("Ready", false, "ReadinessGatesNotReady")),
                pod("expert-2", "gpu-node-b", "10.0.0.7", condition("ContainersReady", true) + ","
                        + condition("Ready", false, "ReadinessGatesNotReady") + ","
                        + condition(ExpertPod.PLACED, true)));
        await().atMost(Duration.ofSeconds(5)).until(() -> !delivered.isEmpty());
        assertThat(delivered.getFirst()).extracting(Instance::getId).containsExactly("expert-1", "expert-2");
    }

    @Test
    void aLostNodesPod_theRouterMarkedNotPlaced_staysOut() {
        // Once re-placed without it, the router sets its gate False; the dead kubelet never rewrites Ready: still out.
        serve(pod("expert-0", "gpu-node-a", "10.0.0.5", condition("ContainersReady", true) + ","
                + condition("Ready", false) + "," + condition(ExpertPod.PLACED, false, "NotInPlacement")));
        await().atMost(Duration.ofSeconds(5)).until(() -> !pods.isEmpty());
        await().atMost(Duration.ofSeconds(5)).until(() -> !delivered.isEmpty());
        assertThat(delivered.getFirst()).isEmpty();
    }

    @Test
    void aPodWithoutTheReadinessGate_whoseReadyIsFalse_isNotPlacedOn() {
        // Without a gate Ready is ContainersReady, unless the node controller marked the pod.
        serve(ungated("expert-0", "gpu-node-a", "10.0.0.5", condition("ContainersReady", true) + ","
                        + condition("Ready", false)),
                ungated("expert-1", "gpu-node-a", "10.0.0.6", condition("ContainersReady", true) + ","
                        + condition("Ready", true)));
        await().atMost(Duration.ofSeconds(5)).until(() -> !delivered.isEmpty());
        assertThat(delivered.getFirst()).extracting(Instance::getId).containsExactly("expert-1");
    }

    @Test
    void thePlacedCondition_isRead_andEveryPodIsHandedToThePodsListener() {
        serve(pod("expert-0", "gpu-node-a", "10.0.0.5", condition("ContainersReady", true) + ","
                + condition("Ready", true) + "," + condition(ExpertPod.PLACED, true)),
                pod("expert-1", "gpu-node-a", "10.0.0.6", condition("ContainersReady", false)));
        await().atMost(Duration.ofSeconds(5)).until(() -> !pods.isEmpty());
        assertThat(pods.getFirst()).extracting(ExpertPod::name, ExpertPod::placed, ExpertPod::nodeName)
                .containsExactlyInAnyOrder(tuple("expert-0", true, "gpu-node-a"),
                        tuple("expert-1", false, "gpu-node-a"));
    }
}
