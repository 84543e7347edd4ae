package io.moemesh.router.kubernetes;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.ConfigMapBuilder;
import io.fabric8.kubernetes.api.model.coordination.v1.Lease;
import io.fabric8.kubernetes.api.model.coordination.v1.LeaseBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.kubernetes.client.openapi.ApiClient;
import io.moemesh.router.discovery.ConfigMapPublisher;
import io.moemesh.router.discovery.PlacementConfigMap;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The placement ConfigMap and the placement Lease when the API server is newer than the client's generated models
 * (client-java 27.0.0) and their objects carry members those models do not define (which the models refuse:
 * kubernetes-client/java#3428, #3980, #4809). Against fabric8's mock API server in CRUD mode, which stores and
 * returns such members as sent: the router reads both, writes both, and what it writes back keeps those members.
 */
@EnableKubernetesMockClient(crud = true, https = false)
class KubernetesNewerObjectMembersTest {
    static final String NS = "moemesh";
    static final String CONFIG_MAP = "test-moemesh-placement";
    static final String LEASE = "test-moemesh-router";
    KubernetesMockServer server;
    KubernetesClient k8s;
    ApiClient client;
    RouterLease lease;
    ScheduledExecutorService timers;

    @BeforeEach
    void client() {
        client = KubernetesApi.client(server.url("/"), Duration.ofSeconds(1));
    }

    @AfterEach
    void close() {
        if (lease != null) {
            lease.close();
        }
        if (timers != null) {
            timers.shutdownNow();
        }
    }

    @Test
    void aConfigMapWithMembersANewerKubernetesAdds_isReadAndWritten_keepingThem() throws Exception {
        ConfigMap cm = new ConfigMapBuilder().withNewMetadata().withName(CONFIG_MAP).withNamespace(NS).endMetadata()
                .addToData("other", "kept").build();
        cm.setAdditionalProperty("futureConfigMapField", Map.of("a", 1));
        cm.getMetadata().setAdditionalProperty("futureMetadataField", "x");
        k8s.configMaps().inNamespace(NS).resource(cm).create();

        KubernetesPlacementConfigMap configMap = new KubernetesPlacementConfigMap(client, NS, CONFIG_MAP);
        PlacementConfigMap.Stored stored = configMap.read();
        assertThat(stored.placementJson()).isNull();
        configMap.replace(PlacementConfigMap.Content.plain("{\"epoch\":\"1\"}"), stored.resourceVersion());

        ConfigMap written = k8s.configMaps().inNamespace(NS).withName(CONFIG_MAP).get();
        assertThat(written.getData()).containsExactlyInAnyOrderEntriesOf(Map.of("other", "kept",
                ConfigMapPublisher.KEY, "{\"epoch\":\"1\"}"));
        assertThat(written.getAdditionalProperties()).containsEntry("futureConfigMapField", Map.of("a", 1));
        assertThat(written.getMetadata().getAdditionalProperties()).containsEntry("futureMetadataField", "x");
        assertThat(configMap.read().placementJson()).isEqualTo("{\"epoch\":\"1\"}");
    }

    @Test
    void aLeaseWithMembersANewerKubernetesAdds_isTakenAndRenewed_keepingThem() {
        Lease l = new LeaseBuilder().withNewMetadata().withName(LEASE).withNamespace(NS).endMetadata().withNewSpec()
                .withLeaseDurationSeconds(3).endSpec().build();
        l.getSpec().setAdditionalProperty("futureSpecField", "kept");
        l.setAdditionalProperty("futureLeaseField", Map.of("b", true));
        k8s.leases().inNamespace(NS).resource(l).create();

        lease = new RouterLease(client, NS, LEASE, "router-a", Duration.ofSeconds(3), () -> {
            timers = Executors.newScheduledThreadPool(2);
            return timers;
        }, System::nanoTime);
        lease.start();
        await().atMost(Duration.ofSeconds(10)).until(lease::held);
        String taken = k8s.leases().inNamespace(NS).withName(LEASE).get().getSpec().getRenewTime().toString();
        // Renewed (every second) from the Lease as read back, still holding it.
        await().atMost(Duration.ofSeconds(10)).until(() -> !taken.equals(k8s.leases().inNamespace(NS)
                .withName(LEASE).get().getSpec().getRenewTime().toString()));
        assertThat(lease.held()).isTrue();

        Lease renewed = k8s.leases().inNamespace(NS).withName(LEASE).get();
        assertThat(renewed.getSpec().getHolderIdentity()).isEqualTo("router-a");
        assertThat(renewed.getSpec().getLeaseTransitions()).isEqualTo(1);
        assertThat(renewed.getSpec().getAdditionalProperties()).containsEntry("futureSpecField", "kept");
        assertThat(renewed.getAdditionalProperties()).containsEntry("futureLeaseField", Map.of("b", true));
    }
}
