package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;

import io.kubernetes.client.custom.Quantity;
import io.kubernetes.client.openapi.models.V1ConfigMap;
import io.kubernetes.client.openapi.models.V1Container;
import io.kubernetes.client.openapi.models.V1Deployment;
import io.kubernetes.client.openapi.models.V1EnvFromSource;
import io.kubernetes.client.openapi.models.V1PodDisruptionBudget;
import io.kubernetes.client.openapi.models.V1PodSpec;
import io.kubernetes.client.openapi.models.V1PolicyRule;
import io.kubernetes.client.openapi.models.V1Probe;
import io.kubernetes.client.openapi.models.V1Role;
import io.kubernetes.client.openapi.models.V1RoleBinding;
import io.kubernetes.client.openapi.models.V1SecurityContext;
import io.kubernetes.client.openapi.models.V1Service;
import io.kubernetes.client.openapi.models.V1ServicePort;
import io.kubernetes.client.openapi.models.V1StatefulSet;
import io.kubernetes.client.openapi.models.V1Volume;
import io.kubernetes.client.openapi.models.V1VolumeMount;
import io.kubernetes.client.openapi.models.V2HorizontalPodAutoscaler;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** What must hold for every documented value set: the defaults and each file under moemesh/ci/. */
class ChartRenderTest {

    static List<Chart.ValueSet> valueSets() {
        return Chart.valueSets();
    }

    private static String name(String component) {
        return Chart.RELEASE + "-" + component;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void everyContainer_hasCpuAndMemoryRequestsAndLimits(Chart.ValueSet set) {
        for (RenderedChart.Workload w : Chart.render(set).workloads()) {
            for (V1Container c : w.allContainers()) {
                assertThat(c.getResources()).as("%s %s container %s resources", w.kind(), w.name(), c.getName())
                        .isNotNull();
                Map<String, Quantity> requests = c.getResources().getRequests();
                Map<String, Quantity> limits = c.getResources().getLimits();
                assertThat(requests).as("%s/%s requests", w.name(), c.getName()).containsKeys("cpu", "memory");
                assertThat(limits).as("%s/%s limits", w.name(), c.getName()).containsKeys("cpu", "memory");
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void everyServiceContainer_hasStartupReadinessAndLivenessProbes_overHttpOrGrpc_neverExec(Chart.ValueSet set) {
        RenderedChart chart = Chart.render(set);
        assertThat(chart.workloads()).isNotEmpty();
        for (RenderedChart.Workload w : chart.workloads()) {
            for (V1Container c : w.template().getSpec().getContainers()) {
                String what = w.name() + "/" + c.getName();
                for (V1Probe probe : new V1Probe[]{c.getStartupProbe(), c.getReadinessProbe(), c.getLivenessProbe()}) {
                    assertThat(probe).as("%s probe", what).isNotNull();
                    assertThat(probe.getHttpGet() != null || probe.getGrpc() != null)
                            .as("%s probes over HTTP or gRPC", what).isTrue();
                    assertThat(probe.getExec()).as("%s exec probe", what).isNull();
                    Object port = probe.getHttpGet() != null ? probe.getHttpGet().getPort().toString()
                            : String.valueOf(probe.getGrpc().getPort());
                    assertThat(containerPorts(c)).as("%s probe port", what).contains(port.toString());
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void everyPodAndContainer_runsNonRoot_withReadOnlyRootFilesystem_andWritableTmp(Chart.ValueSet set) {
        for (RenderedChart.Workload w : Chart.render(set).workloads()) {
            V1PodSpec pod = w.template().getSpec();
            assertThat(pod.getSecurityContext().getRunAsNonRoot()).as("%s runAsNonRoot", w.name()).isTrue();
            assertThat(pod.getSecurityContext().getRunAsUser()).as("%s runAsUser", w.name()).isPositive();
            Set<String> emptyDirs = pod.getVolumes().stream().filter(v -> v.getEmptyDir() != null)
                    .map(V1Volume::getName).collect(Collectors.toSet());
            for (V1Container c : w.allContainers()) {
                String what = w.name() + "/" + c.getName();
                V1SecurityContext sc = c.getSecurityContext();
                assertThat(sc).as("%s securityContext", what).isNotNull();
                assertThat(sc.getReadOnlyRootFilesystem()).as("%s readOnlyRootFilesystem", what).isTrue();
                assertThat(sc.getAllowPrivilegeEscalation()).as("%s allowPrivilegeEscalation", what).isFalse();
                assertThat(sc.getRunAsNonRoot()).as("%s runAsNonRoot", what).isTrue();
                assertThat(sc.getCapabilities().getDrop()).as("%s capabilities", what).containsExactly("ALL");
                assertThat(c.getVolumeMounts()).as("%s mounts an emptyDir at /tmp", what)
                        .anySatisfy(m -> {
                            assertThat(m.getMountPath()).isEqualTo("/tmp");
                            assertThat(emptyDirs).contains(m.getName());
                        });
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void everyMountConfigMapAndSecret_referencedByAPod_exists(Chart.ValueSet set) {
        RenderedChart chart = Chart.render(set);
        Set<String> configMaps = chart.all(V1ConfigMap.class).stream().map(c -> c.getMetadata().getName())
                .collect(Collectors.toSet());
        Set<String> certificateSecrets = chart.customResources().stream()
                .map(cr -> String.valueOf(((Map<?, ?>) cr.get("spec")).get("secretName")))
                .collect(Collectors.toSet());
        boolean certManager = (boolean) Chart.value(Chart.values(set), "tls.certManager.enabled");
        for (RenderedChart.Workload w : chart.workloads()) {
            V1PodSpec pod = w.template().getSpec();
            Set<String> volumes = pod.getVolumes().stream().map(V1Volume::getName).collect(Collectors.toSet());
            volumes.addAll(w.claimTemplates());
            for (V1Container c : w.allContainers()) {
                assertThat(c.getVolumeMounts()).extracting(V1VolumeMount::getName)
                        .as("%s/%s mounts only volumes of its pod", w.name(), c.getName()).isSubsetOf(volumes);
                Optional.ofNullable(c.getEnvFrom()).orElse(List.of()).stream()
                        .map(V1EnvFromSource::getConfigMapRef).filter(Objects::nonNull)
                        .forEach(ref -> assertThat(configMaps).as("%s envFrom", w.name()).contains(ref.getName()));
            }
            for (V1Volume v : pod.getVolumes()) {
                if (v.getConfigMap() != null) {
                    assertThat(configMaps).as("%s volume %s", w.name(), v.getName())
                            .contains(v.getConfigMap().getName());
                }
                if (v.getName().equals("tls") && certManager) {
                    assertThat(certificateSecrets).as("%s: a Certificate writes its TLS Secret", w.name())
                            .contains(v.getSecret().getSecretName());
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void hpasAndPdbsAndServices_targetWorkloadsThatExist(Chart.ValueSet set) {
        RenderedChart chart = Chart.render(set);
        for (V2HorizontalPodAutoscaler hpa : chart.all(V2HorizontalPodAutoscaler.class)) {
            var ref = hpa.getSpec().getScaleTargetRef();
            assertThat(chart.workloads()).as("HPA %s target", hpa.getMetadata().getName())
                    .anySatisfy(w -> {
                        assertThat(w.kind()).isEqualTo(ref.getKind());
                        assertThat(w.name()).isEqualTo(ref.getName());
                    });
            assertThat(hpa.getSpec().getMinReplicas()).isLessThanOrEqualTo(hpa.getSpec().getMaxReplicas());
        }
        for (V1PodDisruptionBudget pdb : chart.all(V1PodDisruptionBudget.class)) {
            Map<String, String> selector = pdb.getSpec().getSelector().getMatchLabels();
            assertThat(chart.workloads().stream().filter(w -> selects(selector, w)).count())
                    .as("workloads PDB %s selects", pdb.getMetadata().getName()).isEqualTo(1);
        }
        for (V1Service svc : chart.all(V1Service.class)) {
            List<RenderedChart.Workload> selected = chart.workloads().stream()
                    .filter(w -> selects(svc.getSpec().getSelector(), w)).toList();
            assertThat(selected).as("workloads Service %s selects", svc.getMetadata().getName()).hasSize(1);
            for (V1ServicePort port : svc.getSpec().getPorts()) {
                assertThat(containerPorts(selected.getFirst().template().getSpec().getContainers().getFirst()))
                        .as("Service %s targetPort", svc.getMetadata().getName())
                        .contains(port.getTargetPort().toString());
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void expertPods_requestTheConfiguredGpus_onlyWithTheGpuDevice(Chart.ValueSet set) {
        Map<String, Object> values = Chart.values(set);
        String resource = (String) Chart.value(values, "expertService.gpuResource");
        V1Container expert = Chart.render(set).one(V1StatefulSet.class, name("expert-service")).getSpec()
                .getTemplate().getSpec().getContainers().getFirst();
        if ("gpu".equals(Chart.value(values, "expertService.device"))) {
            Quantity gpus = new Quantity(String.valueOf(Chart.value(values, "expertService.gpus")));
            assertThat(expert.getResources().getLimits()).containsEntry(resource, gpus);
            assertThat(expert.getResources().getRequests()).containsEntry(resource, gpus);
        } else {
            assertThat(expert.getResources().getLimits()).doesNotContainKey(resource);
            assertThat(expert.getResources().getRequests()).doesNotContainKey(resource);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void routerRole_grantsExactlyTheVerbsOfTheCallsTheRouterMakes_toTheRoutersServiceAccount(Chart.ValueSet set) {
        RenderedChart chart = Chart.render(set);
        String placement = name("placement");
        assertThat(chart.one(V1ConfigMap.class, placement).getData()).as("created empty, the router fills it")
                .isNullOrEmpty();
        V1Role role = chart.one(V1Role.class, name("router"));
        // One verb per call in router-service's io.moemesh.router.kubernetes, nothing more (least privilege):
        // KubernetesPodDiscovery lists and watches pods (never reads one by name: no get); KubernetesPodConditions
        // patches pods/status (the readiness gate's condition; expertService.readinessGate.enabled, on in every value
        // set); KubernetesPlacementConfigMap reads the placement ConfigMap and replaces it (get, update; never a
        // patch); RouterLease reads, replaces and creates the Lease (get, update, create).
        assertThat(role.getRules()).containsExactly(
                new V1PolicyRule().apiGroups(List.of("")).resources(List.of("pods")).verbs(List.of("list", "watch")),
                new V1PolicyRule().apiGroups(List.of("")).resources(List.of("pods/status")).verbs(List.of("patch")),
                new V1PolicyRule().apiGroups(List.of("")).resources(List.of("configmaps"))
                        .resourceNames(List.of(placement)).verbs(List.of("get", "update")),
                // the placement lease: only its holder places (create cannot be limited by name)
                new V1PolicyRule().apiGroups(List.of("coordination.k8s.io")).resources(List.of("leases"))
                        .resourceNames(List.of(name("router"))).verbs(List.of("get", "update")),
                new V1PolicyRule().apiGroups(List.of("coordination.k8s.io")).resources(List.of("leases"))
                        .verbs(List.of("create")));
        assertThat(chart.all(V1Role.class)).hasSize(1);
        V1RoleBinding binding = chart.one(V1RoleBinding.class, name("router"));
        assertThat(binding.getRoleRef().getKind()).isEqualTo("Role");
        assertThat(binding.getRoleRef().getName()).isEqualTo(role.getMetadata().getName());
        assertThat(binding.getSubjects()).singleElement().satisfies(s -> {
            assertThat(s.getKind()).isEqualTo("ServiceAccount");
            assertThat(s.getName()).isEqualTo(name("router"));
            assertThat(s.getNamespace()).isEqualTo(Chart.NAMESPACE);
        });
        for (RenderedChart.Workload w : chart.workloads()) {
            V1PodSpec pod = w.template().getSpec();
            if (w.name().equals(name("router"))) {
                assertThat(pod.getServiceAccountName()).isEqualTo(name("router"));
            } else {
                assertThat(pod.getAutomountServiceAccountToken()).as("%s has no API token", w.name()).isFalse();
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void routerIsOneRecreatedPod_discoveringTheExpertPods_andPublishingToTheConfigMapTheGatewaysMount(
            Chart.ValueSet set) {
        RenderedChart chart = Chart.render(set);
        V1Deployment router = chart.one(V1Deployment.class, name("router"));
        assertThat(router.getSpec().getReplicas()).isEqualTo(1);
        assertThat(router.getSpec().getStrategy().getType()).isEqualTo("Recreate");
        Map<String, String> settings = chart.one(V1ConfigMap.class, name("router")).getData();
        assertThat(settings).containsEntry("MOEMESH_ROUTER_DISCOVERY_MODE", "kubernetes")
                .containsEntry("MOEMESH_ROUTER_DISCOVERY_CONFIG_MAP", name("placement"))
                // the Lease the Role lets it take: a second router pod that overlaps does not place
                .containsEntry("MOEMESH_ROUTER_DISCOVERY_LEASE", name("router"))
                .containsEntry("MOEMESH_ROUTER_DISCOVERY_GRPC_PORT",
                        String.valueOf(Chart.value(Chart.values(set), "expertService.grpcPort")));
        assertThat(router.getSpec().getTemplate().getSpec().getContainers().getFirst().getEnv())
                .anySatisfy(e -> {
                    assertThat(e.getName()).isEqualTo("MOEMESH_ROUTER_DISCOVERY_NAMESPACE");
                    assertThat(e.getValueFrom().getFieldRef().getFieldPath()).isEqualTo("metadata.namespace");
                });
        Map<String, String> selector = parseSelector(settings.get("MOEMESH_ROUTER_DISCOVERY_LABEL_SELECTOR"));
        assertThat(chart.workloads().stream().filter(w -> selects(selector, w)).map(RenderedChart.Workload::name))
                .as("pods the discovery selector matches").containsExactly(name("expert-service"));

        V1Deployment gateway = chart.one(V1Deployment.class, name("gateway"));
        V1Volume placement = gateway.getSpec().getTemplate().getSpec().getVolumes().stream()
                .filter(v -> v.getConfigMap() != null && v.getConfigMap().getName().equals(name("placement")))
                .findFirst().orElseThrow();
        V1VolumeMount mount = gateway.getSpec().getTemplate().getSpec().getContainers().getFirst().getVolumeMounts()
                .stream().filter(m -> m.getName().equals(placement.getName())).findFirst().orElseThrow();
        assertThat(placement.getConfigMap().getItems())
                .as("every key is mounted: placement.json or, past the router's gzip threshold, placement.json.gz")
                .isNullOrEmpty();
        assertThat(mount.getSubPath()).as("a subPath mount would never see the router's updates").isNull();
        assertThat(chart.one(V1ConfigMap.class, name("gateway")).getData())
                .containsEntry("MOEMESH_GATEWAY_PLACEMENT_FILE", mount.getMountPath() + "/placement.json")
                .containsEntry("MOEMESH_GATEWAY_ROUTER_ENDPOINT",
                        name("router") + ":" + Chart.value(Chart.values(set), "router.grpcPort"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void terminationGrace_coversPreStopAndTheServicesOwnDrain(Chart.ValueSet set) {
        RenderedChart chart = Chart.render(set);
        record Drained(String workload, String configMap, String graceKey) {
        }
        for (Drained d : List.of(new Drained(name("gateway"), name("gateway"), "MOEMESH_GATEWAY_SHUTDOWN_GRACE"),
                new Drained(name("expert-service"), name("expert-service"), "MOEMESH_EXPERT_SHUTDOWN_GRACE"))) {
            RenderedChart.Workload w = chart.workloads().stream().filter(x -> x.name().equals(d.workload()))
                    .findFirst().orElseThrow();
            V1Container c = w.template().getSpec().getContainers().getFirst();
            List<String> preStop = c.getLifecycle().getPreStop().getExec().getCommand();
            assertThat(preStop.getFirst()).isEqualTo("sleep");
            long sleep = Long.parseLong(preStop.get(1));
            String grace = chart.one(V1ConfigMap.class, d.configMap()).getData().get(d.graceKey());
            long shutdown = Long.parseLong(grace.substring(0, grace.length() - 1));
            assertThat(w.template().getSpec().getTerminationGracePeriodSeconds()).as(d.workload())
                    .isGreaterThanOrEqualTo(sleep + shutdown + 10);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void images_defaultToTheChartsAppVersion(Chart.ValueSet set) {
        for (RenderedChart.Workload w : Chart.render(set).workloads()) {
            for (V1Container c : w.template().getSpec().getContainers()) {
                assertThat(c.getImage()).as(w.name()).startsWith("ghcr.io/moemesh/moemesh-").endsWith(":0.1.0");
            }
        }
    }

    static boolean selects(Map<String, String> selector, RenderedChart.Workload w) {
        return selector != null && !selector.isEmpty()
                && w.template().getMetadata().getLabels().entrySet().containsAll(selector.entrySet());
    }

    static Map<String, String> parseSelector(String selector) {
        return java.util.Arrays.stream(selector.split(",")).map(kv -> kv.split("=", 2))
                .collect(Collectors.toMap(kv -> kv[0], kv -> kv[1]));
    }

    private static Set<String> containerPorts(V1Container c) {
        return c.getPorts().stream().flatMap(p -> java.util.stream.Stream.of(p.getName(),
                String.valueOf(p.getContainerPort()))).collect(Collectors.toSet());
    }

}
