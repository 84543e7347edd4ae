package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.kubernetes.client.custom.Quantity;
import io.kubernetes.client.openapi.models.V1Deployment;
import io.kubernetes.client.openapi.models.V1DeploymentSpec;
import io.kubernetes.client.openapi.models.V1ObjectMeta;
import io.kubernetes.client.openapi.models.V1PersistentVolumeClaim;
import io.kubernetes.client.openapi.models.V1PersistentVolumeClaimSpec;
import io.kubernetes.client.openapi.models.V1StatefulSet;
import io.kubernetes.client.openapi.models.V1StatefulSetSpec;
import io.kubernetes.client.openapi.models.V1VolumeResourceRequirements;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * What the chart reads from the cluster on {@code helm upgrade} and {@code helm install} ({@code lookup}), rendered
 * by Helm's {@code upgrade --dry-run=server} and {@code install --dry-run=server} against {@link FakeKubernetesApi}
 * (in {@code helm template}, the other tests' way, lookup finds nothing: a first install into an empty namespace).
 * Helm prints a dry run's NOTES but not its manifest, so the replica tests render a copy of the chart whose NOTES.txt
 * is the two autoscaled workloads' templates.
 */
class ChartUpgradeLookupTest {
    private static final String EXPERTS = Chart.RELEASE + "-expert-service";
    private static final String GATEWAY = Chart.RELEASE + "-gateway";
    private static final String KVCACHE = Chart.RELEASE + "-kvcache";

    @TempDir
    Path work;
    /** The chart with NOTES.txt rendering the expert-service StatefulSet and the gateway Deployment. */
    Path chart;

    @BeforeEach
    void copyTheChart_withTheWorkloadsAsNotes() throws IOException {
        chart = Chart.copy(work);
        Files.writeString(chart.resolve("templates/NOTES.txt"), """
                {{ include (print $.Template.BasePath "/expert-service-statefulset.yaml") . }}
                ---
                {{ include (print $.Template.BasePath "/gateway-deployment.yaml") . }}
                """);
    }

    /**
     * Values of an upgrade over live workloads with 6 expert pods and 3 gateways, and the counts it must render. A
     * manifest without spec.replicas, upgraded from one with it (autoscaling was off), makes Helm's three-way merge
     * delete the field, which the API server defaults to 1 (helm/helm#12650): with the HPAs on, the upgrade keeps
     * what is live, and the HPAs scale from there. With them off, the values say.
     */
    static Stream<Arguments> upgrades() {
        return Stream.of(
                Arguments.of(Map.of(), 6, 3), // autoscaling on (the defaults), e.g. just turned on
                Arguments.of(Map.of("expertService.autoscaling.enabled", "false", "expertService.replicas", "4",
                        "gateway.autoscaling.enabled", "false", "gateway.replicas", "2"), 4, 2));
    }

    @ParameterizedTest(name = "{0} -> {1} expert pods, {2} gateways")
    @MethodSource("upgrades")
    void upgrade_keepsTheLiveReplicaCountsWhileTheHpasOwnThem_elseRendersTheConfiguredOnes(
            Map<String, String> values, int experts, int gateways) {
        try (FakeKubernetesApi api = new FakeKubernetesApi()) {
            api.live(new V1StatefulSet().apiVersion("apps/v1").kind("StatefulSet")
                            .metadata(new V1ObjectMeta().name(EXPERTS)).spec(new V1StatefulSetSpec().replicas(6)))
                    .live(new V1Deployment().apiVersion("apps/v1").kind("Deployment")
                            .metadata(new V1ObjectMeta().name(GATEWAY)).spec(new V1DeploymentSpec().replicas(3)));
            RenderedChart workloads = notes(Chart.upgradeDryRun(chart, values, api));
            assertThat(workloads.one(V1StatefulSet.class, EXPERTS).getSpec().getReplicas()).isEqualTo(experts);
            assertThat(workloads.one(V1Deployment.class, GATEWAY).getSpec().getReplicas()).isEqualTo(gateways);
        }
    }

    /**
     * The installed kvcache volume claim template (size, storage class) against the values: Kubernetes refuses any
     * change of a StatefulSet's volumeClaimTemplates, so the chart fails first with what to do instead, the
     * expansion recipe when the volume grows. An unchanged volume upgrades.
     */
    static Stream<Arguments> kvcacheVolumes() {
        return Stream.of(
                Arguments.of("100Gi", "", Map.of(), List.of()), // as installed (the defaults)
                Arguments.of("107374182400", "", Map.of(), List.of()), // the same size written otherwise
                Arguments.of("50Gi", "", Map.of(), List.of("kvcache.persistence.size (100Gi)", "(50Gi)",
                        "Forbidden: updates to statefulset spec",
                        "kubectl -n serving patch pvc ssd-moemesh-kvcache-0 -p "
                                + "'{\"spec\":{\"resources\":{\"requests\":{\"storage\":\"100Gi\"}}}}'",
                        "kubectl -n serving delete statefulset moemesh-kvcache --cascade=orphan",
                        "run this upgrade again", "Changing the kvcache volume")),
                Arguments.of("200Gi", "", Map.of(), List.of("kvcache.persistence.size (100Gi)", "(200Gi)",
                        "cannot shrink", "kubectl -n serving delete statefulset moemesh-kvcache --cascade=orphan",
                        "kubectl -n serving delete pvc ssd-moemesh-kvcache-<ordinal> --wait=false",
                        "Changing the kvcache volume")),
                Arguments.of("100Gi", "local-nvme", Map.of(), List.of("kvcache.persistence.storageClassName (\"\")",
                        "(\"local-nvme\")", "kubectl -n serving delete statefulset moemesh-kvcache --cascade=orphan",
                        "Changing the kvcache volume")),
                Arguments.of("100Gi", "", Map.of("kvcache.persistence.storageClassName", "local-nvme"),
                        List.of("kvcache.persistence.storageClassName (\"local-nvme\")", "(\"\")")));
    }

    @ParameterizedTest(name = "installed {0} {1}, values {2}")
    @MethodSource("kvcacheVolumes")
    void upgradeChangingTheKvcacheVolumeClaimTemplate_failsSayingHowToMigrate(String size, String storageClass,
                                                                              Map<String, String> values,
                                                                              List<String> message) {
        try (FakeKubernetesApi api = new FakeKubernetesApi()) {
            api.live(kvcacheStatefulSet(1, size, storageClass.isEmpty() ? null : storageClass));
            if (message.isEmpty()) {
                assertThat(Chart.upgradeDryRun(chart, values, api)).contains("STATUS: pending-upgrade");
            } else {
                assertThatThrownBy(() -> Chart.upgradeDryRun(chart, values, api))
                        .satisfies(e -> assertThat(e.getMessage()).contains(message));
            }
        }
    }

    /**
     * Live claims of the ordinals an upgrade runs, against the values: a StatefulSet takes an ordinal's claim by name
     * whatever its template asks, and keeps the claims of the pods a scale-in removed. So an upgrade whose claim
     * template matches the values may still put a pod on a smaller claim: one a scale-in left before the volumes were
     * grown (raising kvcache.replicas again), or one the expansion recipe forgot (the StatefulSet deleted with
     * --cascade=orphan, so none is live). The upgrade fails naming the claim and how to fix it. Claims of the values'
     * size, larger ones (grown in place: kubectl patch, a PVC autoresizer), and a claim of an ordinal the upgrade does
     * not run, upgrade.
     */
    static Stream<Arguments> upgradeClaims() {
        return Stream.of(
                Arguments.of("100Gi", Map.of(0, "100Gi", 1, "100Gi"), Map.of("kvcache.replicas", "2"), List.of()),
                Arguments.of("100Gi", Map.of(0, "100Gi", 1, "50Gi"), Map.of(), List.of()), // ordinal 1 not run
                // kvcache.replicas 2 -> 1, ordinal 0 grown to 200Gi, then replicas 2 again: pod 1 on the old claim
                Arguments.of("200Gi", Map.of(0, "200Gi", 1, "100Gi"), Map.of("kvcache.replicas", "2",
                        "kvcache.persistence.size", "200Gi"), List.of("kvcache.persistence.size (200Gi) is larger than",
                        "PersistentVolumeClaim ssd-moemesh-kvcache-1 (100Gi", "kvcache pod moemesh-kvcache-1",
                        "would run out of space", "kubectl -n serving patch pvc ssd-moemesh-kvcache-1 -p "
                                + "'{\"spec\":{\"resources\":{\"requests\":{\"storage\":\"200Gi\"}}}}'",
                        "kubectl -n serving delete pvc ssd-moemesh-kvcache-1 --wait=false",
                        "Changing the kvcache volume")),
                // claims grown in place (kubectl patch, a PVC autoresizer) under the running pods: an image bump
                // upgrades, as it did before claims were looked up on upgrades
                Arguments.of("100Gi", Map.of(0, "150Gi"), Map.of("kvcache.image.tag", "0.2.1"), List.of()),
                Arguments.of("100Gi", Map.of(0, "100Gi", 1, "200Gi"), Map.of("kvcache.replicas", "2"), List.of()),
                // the expansion recipe with ordinal 1 forgotten: no live StatefulSet to compare with
                Arguments.of("", Map.of(0, "200Gi", 1, "100Gi"), Map.of("kvcache.replicas", "2",
                        "kvcache.persistence.size", "200Gi"), List.of("kvcache.persistence.size (200Gi) is larger than",
                        "PersistentVolumeClaim ssd-moemesh-kvcache-1 (100Gi",
                        "kubectl -n serving patch pvc ssd-moemesh-kvcache-1")));
    }

    @ParameterizedTest(name = "live template {0}, claims {1}, values {2}")
    @MethodSource("upgradeClaims")
    void upgradeOntoASmallerClaim_failsNamingTheClaim_evenWhenTheClaimTemplateMatches_aLargerOneUpgrades(
            String templateSize, Map<Integer, String> claims, Map<String, String> values, List<String> message) {
        try (FakeKubernetesApi api = new FakeKubernetesApi()) {
            if (!templateSize.isEmpty()) {
                api.live(kvcacheStatefulSet(1, templateSize, null));
            }
            claims.forEach((ordinal, size) -> api.live(ssdClaim(ordinal, size, null)));
            if (message.isEmpty()) {
                assertThat(Chart.upgradeDryRun(chart, values, api)).contains("STATUS: pending-upgrade");
            } else {
                assertThatThrownBy(() -> Chart.upgradeDryRun(chart, values, api))
                        .satisfies(e -> assertThat(e.getMessage()).contains(message));
            }
        }
    }

    /**
     * SSD claims an uninstalled release left (helm uninstall keeps a StatefulSet's claims), the values of a first
     * install, and what its failure must say. The install's StatefulSet would take ssd-moemesh-kvcache-N by name
     * whatever its template asks: a smaller volume than persistence.size runs the tier out of space, a larger one
     * may hold more than the startup budget reads, so the install fails naming the claim, its size and the value to
     * change. A claim of the asked size, and claims of ordinals the install does not start, install.
     */
    static Stream<Arguments> leftClaims() {
        return Stream.of(
                Arguments.of(Map.of(0, "100Gi"), Map.of(), List.of()), // the defaults, reinstalled
                Arguments.of(Map.of(0, "107374182400"), Map.of(), List.of()), // the same size written otherwise
                Arguments.of(Map.of(1, "10Gi"), Map.of(), List.of()), // ordinal 1 is not started with 1 replica
                Arguments.of(Map.of(0, "100Gi"), Map.of("kvcache.persistence.size", "200Gi",
                        "kvcache.ssdBytes", "90000000000"), List.of("kvcache.persistence.size (200Gi) is larger than",
                        "PersistentVolumeClaim ssd-moemesh-kvcache-0 (100Gi", "would run out of space",
                        "Set kvcache.persistence.size to 100Gi",
                        "kubectl -n serving patch pvc ssd-moemesh-kvcache-0 -p "
                                + "'{\"spec\":{\"resources\":{\"requests\":{\"storage\":\"200Gi\"}}}}'",
                        "kubectl -n serving delete pvc ssd-moemesh-kvcache-0", "Changing the kvcache volume")),
                Arguments.of(Map.of(0, "100Gi", 1, "50Gi"), Map.of("kvcache.replicas", "2"),
                        List.of("kvcache.persistence.size (100Gi) is larger than",
                                "PersistentVolumeClaim ssd-moemesh-kvcache-1 (50Gi",
                                "Set kvcache.persistence.size to 50Gi")),
                Arguments.of(Map.of(0, "500Gi"), Map.of(), List.of("kvcache.persistence.size (100Gi) is smaller than",
                        "PersistentVolumeClaim ssd-moemesh-kvcache-0 (500Gi", "startup budget",
                        "Set kvcache.persistence.size to 500Gi",
                        "kubectl -n serving delete pvc ssd-moemesh-kvcache-0")));
    }

    @ParameterizedTest(name = "claims {0}, values {1}")
    @MethodSource("leftClaims")
    void firstInstallOverAnotherSizesLeftClaim_failsNamingTheClaimItsSizeAndTheValue(Map<Integer, String> claims,
                                                                                  Map<String, String> values,
                                                                                  List<String> message) {
        try (FakeKubernetesApi api = FakeKubernetesApi.withoutRelease()) {
            claims.forEach((ordinal, size) -> api.live(ssdClaim(ordinal, size, null)));
            if (message.isEmpty()) {
                assertThat(Chart.installDryRun(chart, values, api)).contains("STATUS: pending-install");
            } else {
                assertThatThrownBy(() -> Chart.installDryRun(chart, values, api))
                        .satisfies(e -> assertThat(e.getMessage()).contains(message));
            }
        }
    }

    /**
     * A set storage class is compared with the left claim's; with none set the claim got the cluster's default
     * class, which the chart cannot name, so any class installs.
     */
    @ParameterizedTest(name = "claim class {0}, values {1}")
    @MethodSource("leftClaimClasses")
    void firstInstallOverALeftClaimOfAnotherStorageClass_failsNamingIt(String claimClass, Map<String, String> values,
                                                                      List<String> message) {
        try (FakeKubernetesApi api = FakeKubernetesApi.withoutRelease()) {
            api.live(ssdClaim(0, "100Gi", claimClass));
            if (message.isEmpty()) {
                assertThat(Chart.installDryRun(chart, values, api)).contains("STATUS: pending-install");
            } else {
                assertThatThrownBy(() -> Chart.installDryRun(chart, values, api))
                        .satisfies(e -> assertThat(e.getMessage()).contains(message));
            }
        }
    }

    static Stream<Arguments> leftClaimClasses() {
        return Stream.of(
                Arguments.of("standard", Map.of(), List.of()),
                Arguments.of("local-nvme", Map.of("kvcache.persistence.storageClassName", "local-nvme"), List.of()),
                Arguments.of("standard", Map.of("kvcache.persistence.storageClassName", "local-nvme"),
                        List.of("kvcache.persistence.storageClassName (\"local-nvme\")",
                                "PersistentVolumeClaim ssd-moemesh-kvcache-0 (100Gi, storage class \"standard\")",
                                "Set kvcache.persistence.storageClassName to \"standard\"",
                                "kubectl -n serving delete pvc ssd-moemesh-kvcache-0")));
    }

    /** The installed kvcache StatefulSet: {@code replicas} pods, its SSD claim template of that size and class. */
    private static V1StatefulSet kvcacheStatefulSet(int replicas, String size, String storageClass) {
        return new V1StatefulSet().apiVersion("apps/v1").kind("StatefulSet")
                .metadata(new V1ObjectMeta().name(KVCACHE))
                .spec(new V1StatefulSetSpec().replicas(replicas).addVolumeClaimTemplatesItem(new V1PersistentVolumeClaim()
                        .metadata(new V1ObjectMeta().name("ssd"))
                        .spec(new V1PersistentVolumeClaimSpec().accessModes(List.of("ReadWriteOnce"))
                                .storageClassName(storageClass)
                                .resources(new V1VolumeResourceRequirements()
                                        .putRequestsItem("storage", new Quantity(size))))));
    }

    /** A claim of the kvcache StatefulSet's template {@code ssd}, as its controller names and makes them. */
    private static V1PersistentVolumeClaim ssdClaim(int ordinal, String size, String storageClass) {
        return new V1PersistentVolumeClaim().apiVersion("v1").kind("PersistentVolumeClaim")
                .metadata(new V1ObjectMeta().name("ssd-" + KVCACHE + "-" + ordinal))
                .spec(new V1PersistentVolumeClaimSpec().accessModes(List.of("ReadWriteOnce"))
                        .storageClassName(storageClass)
                        .resources(new V1VolumeResourceRequirements().putRequestsItem("storage", new Quantity(size))));
    }

    /** The objects NOTES.txt rendered: what Helm printed after {@code NOTES:}. */
    private static RenderedChart notes(String output) {
        assertThat(output).contains("NOTES:");
        return RenderedChart.parse(output.substring(output.indexOf("NOTES:") + "NOTES:".length()));
    }
}
