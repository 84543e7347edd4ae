package io.moemesh.router.kubernetes;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.ConfigMapBuilder;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.coordination.v1.LeaseBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.grpc.ManagedChannel;
import io.micrometer.core.instrument.MeterRegistry;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.router.RouterServiceApplication;
import io.moemesh.router.coordination.PlacementCoordinator;
import io.moemesh.router.support.FakeExpertService;
import io.moemesh.router.support.RouterTestMesh;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementFiles;
import java.nio.file.Path;
import java.time.ZonedDateTime;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.boot.health.contributor.HealthIndicator;
import org.springframework.boot.health.contributor.Status;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * The whole router (Spring context) in {@code discovery.mode=kubernetes} against fabric8's mock API server in CRUD mode,
 * through the official client: expert-service pods (podIP 127.0.0.1, container port {@code grpc} = a fake
 * expert-service's port) appear, become ready, go; the router places on the ready ones, epoch after epoch, and writes
 * each placement to its ConfigMap.
 */
@EnableKubernetesMockClient(crud = true, https = false)
class KubernetesDiscoveryTest {
    static final String CONFIG_MAP = "test-moemesh-placement";
    KubernetesMockServer server;
    KubernetesClient k8s;
    final List<FakeExpertService> experts = List.of(new FakeExpertService(RouterTestMesh.certs(), "expert-0"),
            new FakeExpertService(RouterTestMesh.certs(), "expert-1"));
    @TempDir
    Path stateDir;
    ConfigurableApplicationContext ctx;

    @AfterEach
    void stop() {
        if (ctx != null) {
            ctx.close();
        }
        experts.forEach(FakeExpertService::close);
    }

    ConfigurableApplicationContext run(String... extra) {
        List<String> args = new ArrayList<>(RouterTestMesh.args(stateDir, List.of()));
        args.addAll(List.of(extra));
        args.addAll(List.of("--moemesh.router.discovery.mode=kubernetes",
                "--moemesh.router.discovery.namespace=" + ExpertPods.NAMESPACE,
                "--moemesh.router.discovery.label-selector=" + ExpertPods.SELECTOR,
                "--moemesh.router.discovery.config-map=" + CONFIG_MAP,
                "--moemesh.router.discovery.api-server=" + server.url("/"),
                "--moemesh.router.discovery.settle-time=200ms", "--moemesh.router.discovery.resync-period=1s",
                "--moemesh.router.replicas=2"));
        return new SpringApplicationBuilder(RouterServiceApplication.class).run(args.toArray(String[]::new));
    }

    int port(int expert) {
        return Integer.parseInt(experts.get(expert).endpoint().substring("127.0.0.1:".length()));
    }

    Placement configMapPlacement() {
        ConfigMap cm = k8s.configMaps().inNamespace(ExpertPods.NAMESPACE).withName(CONFIG_MAP).get();
        String json = cm.getData() == null ? null : cm.getData().get("placement.json");
        return json == null ? null : PlacementFiles.parse(json, "ConfigMap " + CONFIG_MAP);
    }

    static List<String> ids(Placement p) {
        return p == null ? List.of() : p.getInstancesList().stream().map(Instance::getId).toList();
    }

    HealthCheckResponse.ServingStatus health() throws InterruptedException {
        ManagedChannel ch = RouterTestMesh.channel(ctx.getBean(GrpcServerLifecycle.class).port());
        try {
            return HealthGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS)
                    .check(HealthCheckRequest.getDefaultInstance()).getStatus();
        } finally {
            ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    @Test
    void podsAppearBecomeReadyAndGo_epochsFollow_theConfigMapHoldsEachOne_andNothingIsPublishedWhileOneLoads()
            throws Exception {
        k8s.configMaps().inNamespace(ExpertPods.NAMESPACE).resource(new ConfigMapBuilder().withNewMetadata()
                .withName(CONFIG_MAP).withNamespace(ExpertPods.NAMESPACE).endMetadata().build()).create();
        ctx = run();
        PlacementCoordinator coordinator = ctx.getBean(PlacementCoordinator.class);

        // A pod that is not ready yet: nothing to place on, nothing published, NOT_SERVING.
        ExpertPods.create(k8s, ExpertPods.pod("expert-0", port(0)).build());
        await().during(Duration.ofSeconds(1)).atMost(Duration.ofSeconds(5)).untilAsserted(() -> {
            assertThat(coordinator.currentEpoch()).isZero();
            assertThat(configMapPlacement()).isNull();
        });
        assertThat(health()).isEqualTo(HealthCheckResponse.ServingStatus.NOT_SERVING);

        // It becomes ready: epoch 1 on it alone (replicas 2 capped at the one instance), in the ConfigMap too.
        ExpertPods.becomeReady(k8s, "expert-0", "127.0.0.1");
        await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
            assertThat(configMapPlacement()).isNotNull();
            assertThat(configMapPlacement().getEpoch()).isEqualTo(1);
        });
        assertThat(ids(configMapPlacement())).containsExactly("expert-0");
        assertThat(configMapPlacement().getInstances(0).getEndpoint()).isEqualTo(experts.get(0).endpoint());
        assertThat(configMapPlacement()).isEqualTo(coordinator.current());
        assertThat(health()).isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
        // The COMMIT follows the publication (and the ConfigMap write, on its own thread): awaited, not raced.
        await().atMost(Duration.ofSeconds(10)).until(() -> experts.get(0).served() == 1);

        // A second pod ready: epoch 2 over both.
        ExpertPods.create(k8s, ExpertPods.ready(ExpertPods.pod("expert-1", port(1)).build(), "127.0.0.1"));
        await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> assertThat(configMapPlacement().getEpoch())
                .isEqualTo(2));
        assertThat(ids(configMapPlacement())).containsExactly("expert-0", "expert-1");
        // The COMMIT follows the publication (and the ConfigMap write, on its own thread): awaited, not raced.
        await().atMost(Duration.ofSeconds(10)).until(() -> experts.get(1).served() == 2);

        // Malformed pods are ignored: ready without an IP, a bad device annotation, labels that do not match.
        ExpertPods.create(k8s, ExpertPods.ready(ExpertPods.pod("expert-noip", port(0)).build(), ""));
        ExpertPods.create(k8s, ExpertPods.ready(new PodBuilder(ExpertPods.pod("expert-baddevice", port(0)).build())
                .editMetadata().addToAnnotations("moemesh.io/device", "tpu").endMetadata().build(), "127.0.0.1"));
        ExpertPods.create(k8s, ExpertPods.ready(new PodBuilder(ExpertPods.pod("gateway-0", port(0)).build())
                .editMetadata().withLabels(Map.of("app.kubernetes.io/component", "gateway")).endMetadata().build(),
                "127.0.0.1"));
        await().during(Duration.ofSeconds(2)).atMost(Duration.ofSeconds(6)).untilAsserted(() -> {
            assertThat(coordinator.currentEpoch()).isEqualTo(2);
            assertThat(coordinator.replanRunning()).isFalse();
        });

        // expert-1 goes while expert-0 is slow to load epoch 3: nothing is published until it has loaded it.
        experts.get(0).gate = new CountDownLatch(1);
        k8s.pods().inNamespace(ExpertPods.NAMESPACE).withName("expert-1").delete();
        await().atMost(Duration.ofSeconds(10)).until(coordinator::replanRunning);
        await().during(Duration.ofSeconds(1)).atMost(Duration.ofSeconds(5)).untilAsserted(() -> {
            assertThat(coordinator.currentEpoch()).isEqualTo(2);
            assertThat(configMapPlacement().getEpoch()).isEqualTo(2);
        });
        experts.get(0).gate.countDown();
        await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> assertThat(configMapPlacement().getEpoch())
                .isEqualTo(3));
        assertThat(ids(configMapPlacement())).containsExactly("expert-0");
        assertThat(experts.get(1).calls).noneMatch(c -> c.epoch() == 3);
        // The local placement file is written too.
        assertThat(PlacementFiles.read(stateDir.resolve("placement.json")).getEpoch()).isEqualTo(3);

        // Metrics: 1 ready of the 3 pods seen (expert-0 and the two malformed ones the selector lets through),
        // three switches, three ConfigMap writes.
        MeterRegistry registry = ctx.getBean(MeterRegistry.class);
        assertThat(registry.get("moemesh.router.discovery.instances").tag("state", "ready").gauge().value())
                .isEqualTo(1);
        assertThat(registry.get("moemesh.router.discovery.instances").tag("state", "seen").gauge().value())
                .isEqualTo(3);
        assertThat(registry.get("moemesh.router.discovery.replans").functionCounter().count()).isEqualTo(3);
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(
                registry.get("moemesh.router.configmap.writes").functionCounter().count()).isEqualTo(3));
        assertThat(registry.get("moemesh.router.configmap.failures").functionCounter().count()).isZero();
    }

    @Test
    void recreatedRouter_withAnEmptyStateFolder_publishesAboveTheConfigMapsEpoch_evenWhenThePodsAreNew()
            throws Exception {
        // The router pod and every expert pod were recreated (emptyDir state, instances serving nothing), while the
        // ConfigMap, and every gateway mounting it, is at epoch 9: an epoch 1 would be ignored by those gateways.
        k8s.configMaps().inNamespace(ExpertPods.NAMESPACE).resource(new ConfigMapBuilder().withNewMetadata()
                .withName(CONFIG_MAP).withNamespace(ExpertPods.NAMESPACE).endMetadata()
                .addToData("placement.json", PlacementFiles.toJson(EvenPlacement.build(9, List.of(Instance.newBuilder()
                        .setId("expert-old").setEndpoint("10.0.0.9:9100").build()), 4, 8, false, 1)))
                .build()).create();
        ctx = run();
        ExpertPods.create(k8s, ExpertPods.ready(ExpertPods.pod("expert-0", port(0)).build(), "127.0.0.1"));
        await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> assertThat(configMapPlacement().getEpoch())
                .isEqualTo(10));
        assertThat(ids(configMapPlacement())).containsExactly("expert-0");
        // The COMMIT follows the publication (and the ConfigMap write, on its own thread): awaited, not raced.
        await().atMost(Duration.ofSeconds(10)).until(() -> experts.get(0).served() == 10);
    }

    /**
     * Two routers overlap (the old pod's container still runs on a node whose kubelet died): the one without the
     * placement lease places nothing and is not ready while the other renews it, and takes over once it stops.
     */
    @Test
    void aRouterWithoutTheLease_placesNothing_andIsNotReady_untilTheHolderStopsRenewingIt() throws Exception {
        k8s.configMaps().inNamespace(ExpertPods.NAMESPACE).resource(new ConfigMapBuilder().withNewMetadata()
                .withName(CONFIG_MAP).withNamespace(ExpertPods.NAMESPACE).endMetadata().build()).create();
        k8s.leases().inNamespace(ExpertPods.NAMESPACE).resource(new LeaseBuilder().withNewMetadata()
                .withName("test-moemesh-router").withNamespace(ExpertPods.NAMESPACE).endMetadata().withNewSpec()
                .withHolderIdentity("router-old").withLeaseDurationSeconds(3).withRenewTime(ZonedDateTime.now())
                .endSpec().build()).create();
        ScheduledExecutorService oldRouter = Executors.newSingleThreadScheduledExecutor();
        try {
            oldRouter.scheduleWithFixedDelay(() -> k8s.leases().inNamespace(ExpertPods.NAMESPACE)
                    .withName("test-moemesh-router").edit(l -> {
                        l.getSpec().setRenewTime(ZonedDateTime.now());
                        return l;
                    }), 0, 500, TimeUnit.MILLISECONDS);
            ctx = run("--moemesh.router.discovery.lease=test-moemesh-router",
                    "--moemesh.router.discovery.lease-duration=3s");
            PlacementCoordinator coordinator = ctx.getBean(PlacementCoordinator.class);
            HealthIndicator readiness = ctx.getBean("placementLeaseHealthIndicator", HealthIndicator.class);
            ExpertPods.create(k8s, ExpertPods.ready(ExpertPods.pod("expert-0", port(0)).build(), "127.0.0.1"));
            await().during(Duration.ofSeconds(4)).atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
                assertThat(coordinator.currentEpoch()).isZero();
                assertThat(configMapPlacement()).isNull();
                assertThat(readiness.health().getStatus()).isEqualTo(Status.OUT_OF_SERVICE);
            });
            assertThat(experts.get(0).calls).isEmpty();

            oldRouter.shutdownNow();

            await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> assertThat(configMapPlacement()).isNotNull());
            assertThat(ids(configMapPlacement())).containsExactly("expert-0");
            assertThat(readiness.health().getStatus()).isEqualTo(Status.UP);
            await().atMost(Duration.ofSeconds(10)).until(() -> health() == HealthCheckResponse.ServingStatus.SERVING);
        } finally {
            oldRouter.shutdownNow();
        }
    }
}
