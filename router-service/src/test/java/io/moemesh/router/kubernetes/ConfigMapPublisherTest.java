package io.moemesh.router.kubernetes;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.ConfigMapBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.kubernetes.client.openapi.ApiClient;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.router.discovery.ConfigMapPublisher;
import io.moemesh.router.discovery.PlacementConfigMap;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementFiles;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The placement ConfigMap writer through the official client against fabric8's mock API server in CRUD mode, which
 * checks the resourceVersion of a replace like a real API server (409 Conflict when it changed).
 */
@EnableKubernetesMockClient(crud = true, https = false)
class ConfigMapPublisherTest {
    static final String NS = "moemesh";
    static final String NAME = "test-moemesh-placement";
    KubernetesMockServer server;
    KubernetesClient k8s;
    ApiClient client;
    ConfigMapPublisher publisher;

    @BeforeEach
    void configMap() {
        k8s.configMaps().inNamespace(NS).resource(new ConfigMapBuilder().withNewMetadata().withName(NAME)
                .withNamespace(NS).endMetadata().addToData("other", "kept").build()).create();
        client = KubernetesApi.client(server.url("/"), Duration.ofSeconds(1));
    }

    @AfterEach
    void close() {
        if (publisher != null) {
            publisher.close();
        }
    }

    ConfigMapPublisher publisher(PlacementConfigMap configMap) {
        publisher = new ConfigMapPublisher(configMap, NS + "/" + NAME, Executors.newSingleThreadExecutor());
        return publisher;
    }

    static Placement placement(long epoch, int instances, int layers, int experts, int replicas) {
        List<Instance> in = IntStream.range(0, instances).mapToObj(i -> Instance.newBuilder().setId("expert-" + i)
                .setEndpoint("10.0.0." + i + ":9100").build()).toList();
        return EvenPlacement.build(epoch, in, layers, experts, false, replicas);
    }

    String stored() {
        ConfigMap cm = k8s.configMaps().inNamespace(NS).withName(NAME).get();
        return cm.getData() == null ? null : cm.getData().get(ConfigMapPublisher.KEY);
    }

    /** Writes {@code theirs} as another writer would, right before this router's first replace. */
    PlacementConfigMap withRivalWriting(Placement theirs) {
        PlacementConfigMap real = new KubernetesPlacementConfigMap(client, NS, NAME);
        return new PlacementConfigMap() {
            boolean written;

            @Override
            public Stored read() {
                return real.read();
            }

            @Override
            public void replace(String json, String resourceVersion) throws ConflictException {
                if (!written) {
                    written = true;
                    ConfigMap cm = k8s.configMaps().inNamespace(NS).withName(NAME).get();
                    cm.getData().put(ConfigMapPublisher.KEY, PlacementFiles.toJson(theirs));
                    k8s.configMaps().inNamespace(NS).resource(cm).update();
                }
                real.replace(json, resourceVersion);
            }
        };
    }

    @Test
    void write_storesCompactJson_underPlacementJson_keepingTheOtherKeys() {
        Placement p = placement(3, 2, 4, 8, 1);
        assertThat(publisher(new KubernetesPlacementConfigMap(client, NS, NAME)).write(p))
                .isEqualTo(ConfigMapPublisher.Result.WRITTEN);
        assertThat(stored()).doesNotContain("\n", ": ");
        assertThat(PlacementFiles.parse(stored(), "ConfigMap")).isEqualTo(p);
        assertThat(k8s.configMaps().inNamespace(NS).withName(NAME).get().getData()).containsEntry("other", "kept");
        assertThat(publisher.writes()).isEqualTo(1);
    }

    @Test
    void conflict_withAnOlderEpochFromAnotherWriter_isLogged_reRead_andOursWritten() {
        Placement ours = placement(5, 2, 4, 8, 1);
        var result = publisher(withRivalWriting(placement(4, 2, 4, 8, 1))).write(ours);
        assertThat(result).isEqualTo(ConfigMapPublisher.Result.WRITTEN);
        assertThat(publisher.conflicts()).isEqualTo(1);
        assertThat(PlacementFiles.parse(stored(), "ConfigMap").getEpoch()).isEqualTo(5);
    }

    @Test
    void conflict_withANewerEpochFromAnotherWriter_isNeverOverwritten() {
        Placement ours = placement(5, 2, 4, 8, 1);
        var result = publisher(withRivalWriting(placement(9, 2, 4, 8, 1))).write(ours);
        assertThat(result).isEqualTo(ConfigMapPublisher.Result.SUPERSEDED);
        assertThat(publisher.conflicts()).isEqualTo(1);
        assertThat(publisher.failures()).isEqualTo(1);
        assertThat(PlacementFiles.parse(stored(), "ConfigMap").getEpoch()).isEqualTo(9);
    }

    @Test
    void placementLargerThanAConfigMapHolds_isNotWritten_andCounted() {
        publisher(new KubernetesPlacementConfigMap(client, NS, NAME)).write(placement(1, 2, 4, 8, 1));
        // 256 experts × 80 layers × 64 instances with 25% replicas (2 of 8 copies... here 2 copies each): > 1 MiB.
        Placement big = placement(2, 64, 80, 256, 2);
        assertThat(PlacementFiles.toJson(big).length()).isGreaterThan(ConfigMapPublisher.LIMIT_BYTES);
        assertThat(publisher.write(big)).isEqualTo(ConfigMapPublisher.Result.OVERSIZE);
        assertThat(publisher.oversize()).isEqualTo(1);
        assertThat(PlacementFiles.parse(stored(), "ConfigMap").getEpoch()).isEqualTo(1);
    }

    @Test
    void missingConfigMap_isAFailureNamingIt_neverACrash() {
        k8s.configMaps().inNamespace(NS).withName(NAME).delete();
        assertThat(publisher(new KubernetesPlacementConfigMap(client, NS, NAME)).write(placement(1, 2, 4, 8, 1)))
                .isEqualTo(ConfigMapPublisher.Result.FAILED);
        assertThat(publisher.failures()).isEqualTo(1);
        assertThat(Map.of("writes", publisher.writes())).containsEntry("writes", 0L);
    }
}
