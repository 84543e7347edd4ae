package io.moemesh.router.kubernetes;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.fabric8.kubernetes.api.model.ConfigMapBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.PodCondition;
import io.fabric8.kubernetes.api.model.PodConditionBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.router.RouterServiceApplication;
import io.moemesh.router.coordination.PlacementCoordinator;
import io.moemesh.router.discovery.ExpertPod;
import io.moemesh.router.discovery.PlacedGate;
import io.moemesh.router.support.FakeExpertService;
import io.moemesh.router.support.RouterTestMesh;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * The expert-service pods' readiness gate, the whole router (Spring context, discovery.readiness-gate=true) against
 * fabric8's mock API server with strategic merge patches of pod status ({@link StatusPatchingDispatcher}), through the
 * official client. Pods carry the chart's readiness gate, so they are not Ready until the router says so: the router
 * places on them by ContainersReady, then sets {@value ExpertPod#PLACED}.
 */
class KubernetesReadinessGateTest {
    static final String CONFIG_MAP = "test-moemesh-placement";
    final StatusPatchingDispatcher api = new StatusPatchingDispatcher();
    KubernetesMockServer server;
    KubernetesClient k8s;
    final List<FakeExpertService> experts = List.of(new FakeExpertService(RouterTestMesh.certs(), "expert-0"),
            new FakeExpertService(RouterTestMesh.certs(), "expert-1"));
    @TempDir
    Path stateDir;
    ConfigurableApplicationContext ctx;

    @BeforeEach
    void apiServer() {
        server = StatusPatchingDispatcher.start(api);
        k8s = server.createClient();
        k8s.configMaps().inNamespace(ExpertPods.NAMESPACE).resource(new ConfigMapBuilder().withNewMetadata()
                .withName(CONFIG_MAP).withNamespace(ExpertPods.NAMESPACE).endMetadata().build()).create();
    }

    @AfterEach
    void stop() {
        if (ctx != null) {
            ctx.close();
        }
        experts.forEach(FakeExpertService::close);
        k8s.close();
        server.destroy();
    }

    ConfigurableApplicationContext run() {
        List<String> args = new ArrayList<>(RouterTestMesh.args(stateDir, List.of()));
        args.addAll(List.of("--moemesh.router.discovery.mode=kubernetes",
                "--moemesh.router.discovery.namespace=" + ExpertPods.NAMESPACE,
                "--moemesh.router.discovery.label-selector=" + ExpertPods.SELECTOR,
                "--moemesh.router.discovery.config-map=" + CONFIG_MAP,
                "--moemesh.router.discovery.api-server=" + server.url("/"),
                "--moemesh.router.discovery.settle-time=200ms", "--moemesh.router.discovery.resync-period=1s",
                "--moemesh.router.discovery.readiness-gate=true"));
        return new SpringApplicationBuilder(RouterServiceApplication.class).run(args.toArray(String[]::new));
    }

    int port(int expert) {
        return Integer.parseInt(experts.get(expert).endpoint().substring("127.0.0.1:".length()));
    }

    /** A Running pod on {@code node} whose containers are ready, held back by the chart's readiness gate. */
    Pod gated(String name, int expert, String node) {
        return new PodBuilder(ExpertPods.pod(name, port(expert)).build()).editSpec().withNodeName(node)
                .addNewReadinessGate().withConditionType(ExpertPod.PLACED).endReadinessGate().endSpec()
                .editStatus().withPhase("Running").withPodIP("127.0.0.1")
                .addNewCondition().withType("ContainersReady").withStatus("True").endCondition()
                .addNewCondition().withType("Ready").withStatus("False").withReason("ReadinessGatesNotReady")
                .endCondition().endStatus().build();
    }

    PodCondition condition(String pod, String type) {
        Pod p = k8s.pods().inNamespace(ExpertPods.NAMESPACE).withName(pod).get();
        return p.getStatus().getConditions().stream().filter(c -> type.equals(c.getType())).findFirst().orElse(null);
    }

    String placed(String pod) {
        PodCondition c = condition(pod, ExpertPod.PLACED);
        return c == null ? null : c.getStatus();
    }

    @Test
    void aPodHeldBackByTheGate_isPlacedOn_thenItsPlacedConditionIsPatchedTrue_byAStrategicMergeOfItsStatus() {
        ExpertPods.create(k8s, gated("expert-0", 0, "gpu-node-a"));
        ctx = run();
        PlacementCoordinator coordinator = ctx.getBean(PlacementCoordinator.class);

        // Placed on while its Ready condition is False, with its node as its failure domain.
        await().atMost(Duration.ofSeconds(30)).until(() -> coordinator.currentEpoch() == 1);
        assertThat(coordinator.current().getInstancesList()).containsExactly(Instance.newBuilder().setId("expert-0")
                .setEndpoint(experts.get(0).endpoint()).setFailureDomain("gpu-node-a").build());
        await().atMost(Duration.ofSeconds(10)).until(() -> "True".equals(placed("expert-0")));

        // What the client sent: one PATCH of the status subresource, strategic merge, the one condition by type.
        StatusPatchingDispatcher.Patch patch = api.statusPatches.getFirst();
        assertThat(patch.path()).startsWith("/api/v1/namespaces/moemesh/pods/expert-0/status");
        assertThat(patch.contentType()).startsWith(StatusPatchingDispatcher.STRATEGIC_MERGE);
        JsonObject sent = JsonParser.parseString(patch.body()).getAsJsonObject();
        assertThat(sent.keySet()).containsExactlyInAnyOrder("metadata", "status");
        // Addressed to this pod, not to one recreated under its name: its uid is a precondition.
        String uid = k8s.pods().inNamespace(ExpertPods.NAMESPACE).withName("expert-0").get().getMetadata().getUid();
        assertThat(uid).isNotBlank();
        assertThat(sent.getAsJsonObject("metadata").get("uid").getAsString()).isEqualTo(uid);
        JsonObject c = sent.getAsJsonObject("status").getAsJsonArray("conditions").get(0).getAsJsonObject();
        assertThat(sent.getAsJsonObject("status").getAsJsonArray("conditions")).hasSize(1);
        assertThat(c.get("type").getAsString()).isEqualTo(ExpertPod.PLACED);
        assertThat(c.get("status").getAsString()).isEqualTo("True");
        assertThat(c.get("reason").getAsString()).isEqualTo("Placed");
        assertThat(c.get("lastTransitionTime").getAsString()).matches("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ");
        // Merged by type: the kubelet's conditions are still there.
        assertThat(condition("expert-0", "ContainersReady").getStatus()).isEqualTo("True");
    }

    @Test
    void aPatchTheApiRefuses_failsNoReplan_andIsRetriedAtTheNextList() {
        api.refuse.set(1);
        ExpertPods.create(k8s, gated("expert-0", 0, "gpu-node-a"));
        ctx = run();
        PlacementCoordinator coordinator = ctx.getBean(PlacementCoordinator.class);
        await().atMost(Duration.ofSeconds(30)).until(() -> coordinator.currentEpoch() == 1);
        // Refused once (403), then set at the next list (resync period 1 s) without another epoch.
        await().atMost(Duration.ofSeconds(15)).until(() -> "True".equals(placed("expert-0")));
        assertThat(api.statusPatches).hasSizeGreaterThanOrEqualTo(2);
        assertThat(coordinator.currentEpoch()).isEqualTo(1);
    }

    @Test
    void aPodWhoseContainerRestarted_isMarkedNotPlaced_onceANewerEpochLeavesItOut_andPlacedAgainWhenBack() {
        ExpertPods.create(k8s, gated("expert-0", 0, "gpu-node-a"));
        ExpertPods.create(k8s, gated("expert-1", 1, "gpu-node-b"));
        ctx = run();
        PlacementCoordinator coordinator = ctx.getBean(PlacementCoordinator.class);
        await().atMost(Duration.ofSeconds(30)).until(() -> "True".equals(placed("expert-0"))
                && "True".equals(placed("expert-1")));
        long before = coordinator.currentEpoch();

        // expert-1's container restarts: its containers are not ready, the router re-places without it.
        setContainersReady("expert-1", false);
        await().atMost(Duration.ofSeconds(30)).until(() -> "False".equals(placed("expert-1")));
        assertThat(coordinator.currentEpoch()).isGreaterThan(before);
        assertThat(coordinator.current().getInstancesList()).extracting(Instance::getId).containsExactly("expert-0");
        assertThat(condition("expert-1", ExpertPod.PLACED).getReason()).isEqualTo("NotInPlacement");
        assertThat(placed("expert-0")).isEqualTo("True");

        // Back: placed on again, then marked placed again.
        setContainersReady("expert-1", true);
        await().atMost(Duration.ofSeconds(30)).until(() -> "True".equals(placed("expert-1")));
        assertThat(coordinator.current().getInstancesList()).extracting(Instance::getId)
                .containsExactly("expert-0", "expert-1");
    }

    @Test
    void aPatchMeantForAPodsPredecessor_isRefusedByUid_andTheSuccessorKeepsItsCondition() {
        ExpertPods.create(k8s, gated("expert-0", 0, "gpu-node-a"));
        String uid = k8s.pods().inNamespace(ExpertPods.NAMESPACE).withName("expert-0").get().getMetadata().getUid();
        var conditions = new KubernetesPodConditions(KubernetesApi.client(server.url("/"), Duration.ofSeconds(5)),
                ExpertPods.NAMESPACE, java.time.Clock.systemUTC());
        // Written for a predecessor: another uid under the same name.
        assertThatThrownBy(() -> conditions.set(new PlacedGate.Change("expert-0", "uid-of-the-predecessor", true,
                PlacedGate.PLACED, "placement epoch 1 places experts on this pod"))).hasMessageContaining("HTTP 409");
        assertThat(placed("expert-0")).isNull();
        conditions.set(new PlacedGate.Change("expert-0", uid, true, PlacedGate.PLACED, "placement epoch 1"));
        assertThat(placed("expert-0")).isEqualTo("True");
    }

    /** What the kubelet reports when the pod's containers stop or start being ready (a patch: the router's stays). */
    void setContainersReady(String pod, boolean ready) {
        k8s.pods().inNamespace(ExpertPods.NAMESPACE).withName(pod).edit(p -> new PodBuilder(p).editStatus()
                .withConditions(p.getStatus().getConditions().stream().map(c -> "ContainersReady".equals(c.getType())
                        ? new PodConditionBuilder(c).withStatus(ready ? "True" : "False").build() : c).toList())
                .endStatus().build());
    }
}
