package io.moemesh.router.kubernetes;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
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
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The placement ConfigMap writer through the official client against fabric8's mock API server in CRUD mode, which
 * checks the resourceVersion of a replace like a real API server (409 Conflict when it changed): both forms (plain
 * JSON, gzip in binaryData past the threshold), their edges, and a placement too large even gzipped.
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
        publisher = new ConfigMapPublisher(configMap, NS + "/" + NAME, Executors.newSingleThreadScheduledExecutor());
        return publisher;
    }

    ConfigMapPublisher publisher(int gzipThresholdBytes) {
        publisher = new ConfigMapPublisher(new KubernetesPlacementConfigMap(client, NS, NAME), NS + "/" + NAME,
                Executors.newSingleThreadScheduledExecutor(), gzipThresholdBytes);
        return publisher;
    }

    ConfigMap current() {
        return k8s.configMaps().inNamespace(NS).withName(NAME).get();
    }

    /** The gzip form as stored (fabric8 gives binaryData base64-encoded, as the API's JSON carries it). */
    byte[] storedGzip() {
        Map<String, String> binary = current().getBinaryData();
        String b64 = binary == null ? null : binary.get(ConfigMapPublisher.GZIP_KEY);
        return b64 == null ? null : Base64.getDecoder().decode(b64);
    }

    static String compactJson(Placement p) {
        try {
            return JsonFormat.printer().omittingInsignificantWhitespace().print(p);
        } catch (InvalidProtocolBufferException e) {
            throw new AssertionError(e);
        }
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
            public void replace(Content content, String resourceVersion) throws ConflictException {
                if (!written) {
                    written = true;
                    ConfigMap cm = k8s.configMaps().inNamespace(NS).withName(NAME).get();
                    cm.getData().put(ConfigMapPublisher.KEY, PlacementFiles.toJson(theirs));
                    k8s.configMaps().inNamespace(NS).resource(cm).update();
                }
                real.replace(content, resourceVersion);
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
    void placementPastTheDefaultThreshold_isWrittenGzippedInBinaryData_replacingThePlainKey_andReadsBackEqual() {
        publisher(new KubernetesPlacementConfigMap(client, NS, NAME)).write(placement(1, 2, 4, 8, 1));
        assertThat(stored()).isNotNull();
        // 256 experts × 80 layers × 64 instances, every expert twice: 40,960 copies, compact JSON > 1 MiB.
        Placement big = placement(2, 64, 80, 256, 2);
        assertThat(compactJson(big).length()).isGreaterThan(ConfigMapPublisher.LIMIT_BYTES);

        assertThat(publisher.write(big)).isEqualTo(ConfigMapPublisher.Result.WRITTEN);

        ConfigMap cm = current();
        assertThat(cm.getData()).as("the plain key goes in the same update; other keys stay")
                .doesNotContainKey(ConfigMapPublisher.KEY).containsEntry("other", "kept");
        byte[] gz = storedGzip();
        assertThat(gz).as("binaryData placement.json.gz").isNotNull();
        assertThat(gz.length * 4L / 3).isLessThanOrEqualTo(ConfigMapPublisher.DEFAULT_GZIP_THRESHOLD_BYTES);
        assertThat(PlacementFiles.parse(ConfigMapPublisher.gunzip(gz), "ConfigMap")).isEqualTo(big);
        assertThat(publisher.gzipped()).isEqualTo(1);
        assertThat(publisher.writes()).isEqualTo(2);
        assertThat(publisher.oversize()).isZero();

        // Back under the threshold: plain again, the gzip key removed in the same update.
        Placement small = placement(3, 2, 4, 8, 1);
        assertThat(publisher.write(small)).isEqualTo(ConfigMapPublisher.Result.WRITTEN);
        assertThat(storedGzip()).isNull();
        assertThat(PlacementFiles.parse(stored(), "ConfigMap")).isEqualTo(small);
    }

    @ParameterizedTest(name = "threshold = JSON size {0} → gzipped: {1}")
    @CsvSource({"0, false", "-1, true"})
    void compactJsonUpToTheThreshold_isPlain_oneByteMoreIsGzipped(int offset, boolean gzipped) {
        Placement p = placement(7, 4, 8, 16, 2);
        int jsonBytes = compactJson(p).getBytes(StandardCharsets.UTF_8).length;
        assertThat(publisher(jsonBytes + offset).write(p)).isEqualTo(ConfigMapPublisher.Result.WRITTEN);
        if (gzipped) {
            assertThat(stored()).isNull();
            assertThat(PlacementFiles.parse(ConfigMapPublisher.gunzip(storedGzip()), "ConfigMap")).isEqualTo(p);
        } else {
            assertThat(storedGzip()).isNull();
            assertThat(PlacementFiles.parse(stored(), "ConfigMap")).isEqualTo(p);
        }
        assertThat(publisher.gzipped()).isEqualTo(gzipped ? 1 : 0);
    }

    @ParameterizedTest(name = "threshold = base64 of the gzip {0} → written: {1}")
    @CsvSource({"0, true", "-1, false"})
    void gzipFormCountsItsBase64Length_pastTheThresholdEvenGzipped_nothingIsWritten_andCounted(int offset,
                                                                                                boolean written) {
        ConfigMapPublisher first = publisher(ConfigMapPublisher.DEFAULT_GZIP_THRESHOLD_BYTES);
        first.write(placement(1, 2, 4, 8, 1));
        first.close();
        Placement p = placement(2, 8, 16, 64, 2);
        int gzipBytes = ConfigMapPublisher.gzip(compactJson(p)).length;
        int base64 = Base64.getEncoder().encodeToString(ConfigMapPublisher.gzip(compactJson(p))).length();
        assertThat(base64).isEqualTo((gzipBytes + 2) / 3 * 4);

        var result = publisher(base64 + offset).write(p);

        if (written) {
            assertThat(result).isEqualTo(ConfigMapPublisher.Result.WRITTEN);
            assertThat(PlacementFiles.parse(ConfigMapPublisher.gunzip(storedGzip()), "ConfigMap")).isEqualTo(p);
            assertThat(publisher.oversize()).isZero();
        } else {
            assertThat(result).isEqualTo(ConfigMapPublisher.Result.OVERSIZE);
            assertThat(publisher.oversize()).isEqualTo(1);
            assertThat(publisher.writes()).isZero();
            assertThat(storedGzip()).as("nothing written").isNull();
            assertThat(PlacementFiles.parse(stored(), "ConfigMap").getEpoch()).as("the last one that fit")
                    .isEqualTo(1);
        }
    }

    @Test
    void write_ofAnOlderEpochThanTheStoredOne_isSuperseded_withoutAnyConflict_andTheSameEpochIsWrittenAgain() {
        // A router that lost its state (or a second one) reads the ConfigMap unchanged since: the resourceVersion
        // matches, but its epoch 3 must never replace epoch 9, which every gateway mounting the ConfigMap follows.
        ConfigMapPublisher pub = publisher(new KubernetesPlacementConfigMap(client, NS, NAME));
        assertThat(pub.write(placement(9, 2, 4, 8, 1))).isEqualTo(ConfigMapPublisher.Result.WRITTEN);
        assertThat(pub.storedEpoch()).isEqualTo(9);
        assertThat(pub.write(placement(3, 2, 4, 8, 1))).isEqualTo(ConfigMapPublisher.Result.SUPERSEDED);
        assertThat(PlacementFiles.parse(stored(), "ConfigMap").getEpoch()).isEqualTo(9);
        assertThat(pub.conflicts()).isZero();
        // A restored epoch published again by the router that wrote it is not refused.
        assertThat(pub.write(placement(9, 2, 4, 8, 1))).isEqualTo(ConfigMapPublisher.Result.WRITTEN);
    }

    /** A router that lost its state must publish above the epoch the gateways mounting the ConfigMap hold. */
    @Test
    void aNewerEpochFoundThere_isHandedOn_soTheRouterGoesAboveIt() {
        ConfigMapPublisher pub = publisher(new KubernetesPlacementConfigMap(client, NS, NAME));
        pub.write(placement(57, 2, 4, 8, 1));
        List<Long> seen = new java.util.concurrent.CopyOnWriteArrayList<>();
        pub.onEpochSeen(seen::add);
        assertThat(pub.write(placement(3, 2, 4, 8, 1))).isEqualTo(ConfigMapPublisher.Result.SUPERSEDED);
        assertThat(seen).containsExactly(57L);
    }

    /** Nothing may be placed before the ConfigMap's epoch is known: an API server that fails is asked again. */
    @Test
    void readStoredEpoch_isReadAgainWhileTheApiServerFails_thenHandedOn() throws Exception {
        publisher(new KubernetesPlacementConfigMap(client, NS, NAME)).write(placement(57, 2, 4, 8, 1));
        server.expect().get().withPath("/api/v1/namespaces/" + NS + "/configmaps/" + NAME)
                .andReturn(503, status(503)).times(2);
        java.util.concurrent.CompletableFuture<Long> read = new java.util.concurrent.CompletableFuture<>();
        publisher.readStoredEpoch(read::complete);
        assertThat(read.get(30, TimeUnit.SECONDS)).isEqualTo(57);
    }

    @Test
    void readStoredEpoch_ofAMissingConfigMap_isZero_notAnEndlessWait() throws Exception {
        k8s.configMaps().inNamespace(NS).withName(NAME).delete();
        java.util.concurrent.CompletableFuture<Long> read = new java.util.concurrent.CompletableFuture<>();
        publisher(new KubernetesPlacementConfigMap(client, NS, NAME)).readStoredEpoch(read::complete);
        assertThat(read.get(30, TimeUnit.SECONDS)).isZero();
    }

    @Test
    void conflict_withANewerEpochStoredGzipped_isNeverOverwritten() {
        Placement theirs = placement(9, 2, 4, 8, 1);
        PlacementConfigMap real = new KubernetesPlacementConfigMap(client, NS, NAME);
        PlacementConfigMap rival = new PlacementConfigMap() {
            boolean written;

            @Override
            public Stored read() {
                return real.read();
            }

            @Override
            public void replace(Content content, String resourceVersion) throws ConflictException {
                if (!written) {
                    written = true;
                    ConfigMap cm = current();
                    cm.setBinaryData(Map.of(ConfigMapPublisher.GZIP_KEY, Base64.getEncoder()
                            .encodeToString(ConfigMapPublisher.gzip(compactJson(theirs)))));
                    k8s.configMaps().inNamespace(NS).resource(cm).update();
                }
                real.replace(content, resourceVersion);
            }
        };
        assertThat(publisher(rival).write(placement(5, 2, 4, 8, 1)))
                .isEqualTo(ConfigMapPublisher.Result.SUPERSEDED);
        assertThat(PlacementFiles.parse(ConfigMapPublisher.gunzip(storedGzip()), "ConfigMap").getEpoch())
                .isEqualTo(9);
    }

    @Test
    void missingConfigMap_isRefused_namingIt_neverACrash() {
        // The router never creates it (its Role cannot): a 404 is not retried.
        k8s.configMaps().inNamespace(NS).withName(NAME).delete();
        assertThat(publisher(new KubernetesPlacementConfigMap(client, NS, NAME)).write(placement(1, 2, 4, 8, 1)))
                .isEqualTo(ConfigMapPublisher.Result.REFUSED);
        assertThat(publisher.failures()).isEqualTo(1);
        assertThat(Map.of("writes", publisher.writes())).containsEntry("writes", 0L);
    }

    static String status(int code) {
        return "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"code\":" + code + "}";
    }

    /** The publisher's writer thread, idle: what it ran has finished; returns the delayed tasks (retries) queued. */
    static int idleWriterQueue(ScheduledThreadPoolExecutor writer) throws Exception {
        writer.submit(() -> { }).get(15, TimeUnit.SECONDS);
        return writer.getQueue().size();
    }

    @ParameterizedTest(name = "HTTP {0}")
    @ValueSource(ints = {403, 404, 422})
    void aWriteTheApiServerRefusesForGood_isNotRetried_andTheNextEpochIsWritten(int code) throws Exception {
        // A Role without "update" (403), a deleted ConfigMap (404), an invalid object (422): trying again every
        // 30 s would fail the same way forever.
        server.expect().put().withPath("/api/v1/namespaces/" + NS + "/configmaps/" + NAME)
                .andReturn(code, status(code)).once();
        var writer = new ScheduledThreadPoolExecutor(1);
        publisher = new ConfigMapPublisher(new KubernetesPlacementConfigMap(client, NS, NAME), NS + "/" + NAME, writer);
        int before = server.getRequestCount();

        publisher.offer(placement(7, 2, 4, 8, 1));

        assertThat(idleWriterQueue(writer)).as("retries queued").isZero();
        assertThat(server.getRequestCount() - before).as("one GET and one PUT").isEqualTo(2);
        assertThat(publisher.failures()).isEqualTo(1);
        assertThat(publisher.retries()).isZero();
        assertThat(stored()).isNull();

        Placement next = placement(8, 2, 4, 8, 1);
        publisher.offer(next);
        assertThat(idleWriterQueue(writer)).isZero();
        assertThat(PlacementFiles.parse(stored(), "ConfigMap")).isEqualTo(next);
        assertThat(publisher.writes()).isEqualTo(1);
        assertThat(publisher.failures()).isEqualTo(1);
    }

    @Test
    void aWriteTheApiServerFails_isRetried_untilTheEpochIsWritten_countingNoPlacementNotWritten() {
        // The API server answers the first replace with 500: the ConfigMap would stay at an older epoch than the
        // instances serve (a restarted router's floor, a gateway's start) until the next publication.
        server.expect().put().withPath("/api/v1/namespaces/" + NS + "/configmaps/" + NAME)
                .andReturn(500, status(500)).once();
        Placement p = placement(7, 2, 4, 8, 1);
        publisher(new KubernetesPlacementConfigMap(client, NS, NAME)).offer(p);
        await().atMost(Duration.ofSeconds(15)).until(() -> stored() != null);
        assertThat(PlacementFiles.parse(stored(), "ConfigMap")).isEqualTo(p);
        assertThat(publisher.writes()).isEqualTo(1);
        assertThat(publisher.retries()).isEqualTo(1);
        assertThat(publisher.failures()).as("placements not written").isZero();
    }

    @Test
    void aFailedWrite_overtakenByANewerPlacement_isCountedNotWritten_once() {
        server.expect().put().withPath("/api/v1/namespaces/" + NS + "/configmaps/" + NAME)
                .andReturn(503, status(503)).times(2);
        publisher(new KubernetesPlacementConfigMap(client, NS, NAME)).offer(placement(7, 2, 4, 8, 1));
        await().atMost(Duration.ofSeconds(15)).until(() -> publisher.retries() >= 1);
        Placement newer = placement(8, 2, 4, 8, 1);
        publisher.offer(newer);
        await().atMost(Duration.ofSeconds(15)).until(() -> stored() != null);
        assertThat(PlacementFiles.parse(stored(), "ConfigMap")).isEqualTo(newer);
        assertThat(publisher.writes()).isEqualTo(1);
        assertThat(publisher.failures()).as("epoch 7, given up for epoch 8").isEqualTo(1);
    }
}
