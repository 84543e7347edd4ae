package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.kubernetes.client.openapi.models.V1ConfigMap;
import io.kubernetes.client.openapi.models.V1Container;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Every environment variable the chart gives a container (its {@code env} and the keys of the ConfigMaps in its
 * {@code envFrom}) means something to the program that reads it: for every documented value set, each service
 * container's environment is bound, through Spring Boot's own relaxed binding, to that service's settings record
 * over its application.yaml ({@link ServiceSettings}). A {@code MOEMESH_*} variable no setting reads (a misspelt
 * {@code MOEMESH_KVCACHE_MODEL_DIR} for {@code model-dirs}) fails naming the variable and the container, and the
 * bound settings must pass the records' validation. Any other name must be on {@link #OTHER_NAMES}, with the reason
 * it is there; those Spring Boot itself reads are bound to Spring's settings classes and must be read by them too.
 */
class ChartEnvironmentTest {

    /** A name outside {@code MOEMESH_*} that a service container may carry, and who reads it. */
    record Known(String reason, boolean boundBySpring) {
    }

    /**
     * The names a service container may carry besides its service's {@code MOEMESH_*} settings. Those Spring Boot
     * binds ({@code boundBySpring}) must also be read when {@link ServiceSettings#SPRING}'s classes are bound.
     */
    static final Map<String, Known> OTHER_NAMES = Map.of(
            "SERVER_ADDRESS", new Known("Spring Boot's server.address: the HTTP listener, all addresses in a pod",
                    true),
            "SERVER_PORT", new Known("Spring Boot's server.port: the gateway's public HTTP API", true),
            "MANAGEMENT_SERVER_ADDRESS", new Known("Spring Boot's management.server.address: the actuator's "
                    + "listener, reachable by the kubelet's probes and Prometheus", true),
            "MANAGEMENT_SERVER_PORT", new Known("Spring Boot's management.server.port: probes and metrics", true),
            "JDK_JAVA_OPTIONS", new Known("read by the java launcher itself (JDK 9+), not by Spring: the chart's "
                    + "javaOptions values (heap share, the Vector API module, the image's AOT cache)", false));

    /**
     * What the model-download init container may carry: the default command's variables and what
     * huggingface_hub and pip read; user additions through {@code model.initContainer.env} are for the user's
     * command and are checked against this list too (the documented sets add HF_TOKEN).
     */
    static final Map<String, String> INIT_CONTAINER_NAMES = Map.of(
            "MODEL_ID", "the Hugging Face repository the default command downloads (model.initContainer.repoId)",
            "MODEL_DIR", "where the default command leaves the model (model.mountPath/model.path)",
            "HOME", "a writable home on the read-only root filesystem (/tmp)",
            "HF_HOME", "huggingface_hub's cache, on the writable /tmp",
            "HF_TOKEN", "huggingface_hub's access token for gated models (from a Secret)",
            "PIP_DISABLE_PIP_VERSION_CHECK", "pip: no network check for a newer pip");

    /** Each container's stand-in root for its mounts (ContainerEnvironment), removed after each test. */
    @TempDir
    Path scratch;

    /** A fresh root under {@link #scratch} for one container's mounts. */
    Path root(RenderedChart.Workload w) {
        try {
            return Files.createTempDirectory(scratch, w.name() + "-");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static List<Chart.ValueSet> valueSets() {
        return Chart.valueSets();
    }

    /** One container's problems: unknown names, settings that do not bind or validate. */
    List<String> problems(RenderedChart chart, RenderedChart.Workload w, V1Container c) {
        Map<String, String> env = ContainerEnvironment.of(chart, w.template().getSpec(), c, root(w));
        String where = w.kind() + " " + w.name() + " container " + c.getName();
        List<String> problems = new ArrayList<>();
        ServiceSettings service = ServiceSettings.forContainer(c.getName());
        ServiceSettings.Bound bound = service.bind(env);
        bound.errors().forEach(e -> problems.add(where + ": its environment does not bind to "
                + service.settingsClass() + " and Spring's settings: " + e));
        if (!bound.errors().isEmpty()) {
            return problems; // a failed binding stops early: what it did not read says nothing
        }
        for (String name : env.keySet()) {
            Known known = OTHER_NAMES.get(name);
            if (name.startsWith("MOEMESH_")) {
                if (!bound.readVariables().contains(name)) {
                    problems.add(where + ": " + name + " is no setting of " + service.settingsClass() + " ("
                            + service.prefix() + ".*): misspelt, or for another service?");
                }
            } else if (known == null) {
                problems.add(where + ": " + name + " is neither a " + service.prefix() + " setting nor on the "
                        + "allow-list of other names (ChartEnvironmentTest.OTHER_NAMES)");
            } else if (known.boundBySpring() && !bound.readVariables().contains(name)) {
                problems.add(where + ": " + name + " is on the allow-list as a Spring Boot setting but binding "
                        + ServiceSettings.SPRING.values() + " did not read it");
            }
        }
        return problems;
    }

    List<String> problems(RenderedChart chart) {
        List<String> problems = new ArrayList<>();
        for (RenderedChart.Workload w : chart.workloads()) {
            for (V1Container c : w.template().getSpec().getContainers()) {
                problems.addAll(problems(chart, w, c));
            }
            for (V1Container init : Optional.ofNullable(w.template().getSpec().getInitContainers()).orElse(List.of())) {
                for (String name : ContainerEnvironment.of(chart, init).keySet()) {
                    if (!INIT_CONTAINER_NAMES.containsKey(name)) {
                        problems.add(w.name() + " init container " + init.getName() + ": " + name + " is not on "
                                + "ChartEnvironmentTest.INIT_CONTAINER_NAMES");
                    }
                }
            }
        }
        return problems;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void everyVariableOfEveryContainer_bindsToItsServicesSettings_andTheSettingsValidate(Chart.ValueSet set) {
        RenderedChart chart = Chart.render(set);
        assertThat(chart.workloads()).isNotEmpty();
        assertThat(problems(chart)).isEmpty();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void everyServiceContainer_isCovered_andItsSettingsRecordIsBuiltFromTheChartsValues(Chart.ValueSet set) {
        RenderedChart chart = Chart.render(set);
        for (RenderedChart.Workload w : chart.workloads()) {
            V1Container c = w.template().getSpec().getContainers().getFirst();
            ServiceSettings service = ServiceSettings.forContainer(c.getName());
            ServiceSettings.Bound bound = service.bind(ContainerEnvironment.of(chart, w.template().getSpec(), c,
                    root(w)));
            assertThat(bound.settings()).as("%s settings", w.name()).isNotNull();
            assertThat(bound.readVariables()).as("%s: the chart's variables are read", w.name())
                    .anyMatch(v -> v.startsWith("MOEMESH_")).contains("MANAGEMENT_SERVER_PORT");
        }
    }

    /** A number in a component's env as a values file gives it, and what its ConfigMap must carry. */
    record NumericEnv(String component, String configMap, String name, String yaml, String rendered) {
    }

    static final List<NumericEnv> NUMERIC_ENV = List.of(
            new NumericEnv("gateway", "gateway", "MOEMESH_GATEWAY_KV_CACHE_TOKENS", "2000000", "2000000"),
            new NumericEnv("gateway", "gateway", "MOEMESH_GATEWAY_KV_CACHE_HEAP_FRACTION", "0.25", "0.25"),
            new NumericEnv("router", "router", "MOEMESH_ROUTER_WINDOW_TOKENS", "1000000", "1000000"),
            new NumericEnv("expertService", "expert-service", "MOEMESH_EXPERT_MAX_INBOUND_MESSAGE_BYTES", "536870912",
                    "536870912"),
            new NumericEnv("kvcache", "kvcache", "MOEMESH_KVCACHE_SEGMENT_BYTES", "1073741824", "1073741824"),
            new NumericEnv("kvcache", "kvcache", "MOEMESH_KVCACHE_FSYNC_INTERVAL_BYTES", "1.6e7", "16000000"));

    /**
     * Helm reads a values file's numbers as float64, whose plain string form is scientific from 1e+06 on ("2e+06",
     * which Spring cannot bind to an int): whole numbers must reach the ConfigMap as integers (--set keeps int64, so
     * only a values file shows it), fractions as written, and the services must bind them.
     */
    @Test
    void numbersInAComponentsEnv_fromAValuesFile_renderAsPlainNumbers_andBind() throws IOException {
        StringBuilder yaml = new StringBuilder();
        for (String component : NUMERIC_ENV.stream().map(NumericEnv::component).distinct().toList()) {
            yaml.append(component).append(":\n  env:\n");
            NUMERIC_ENV.stream().filter(n -> n.component().equals(component))
                    .forEach(n -> yaml.append("    ").append(n.name()).append(": ").append(n.yaml()).append('\n'));
        }
        Path file = Files.writeString(scratch.resolve("numeric-env-values.yaml"), yaml);
        RenderedChart chart = RenderedChart.parse(Chart.template(new Chart.ValueSet("numeric env", file), Map.of()));
        for (NumericEnv n : NUMERIC_ENV) {
            assertThat(chart.one(V1ConfigMap.class, Chart.RELEASE + "-" + n.configMap()).getData())
                    .as("%s.env.%s: %s", n.component(), n.name(), n.yaml()).containsEntry(n.name(), n.rendered());
        }
        assertThat(problems(chart)).isEmpty();
    }

    /**
     * The gateway and the kvcache-service bind one block size, kvBlockTokens, from their ConfigMaps: the
     * kvcache-service refuses every Lookup, Get and Put of another with FAILED_PRECONDITION.
     */
    @ParameterizedTest(name = "kvBlockTokens={0}")
    @ValueSource(ints = {16, 32, 1024})
    void gatewayAndKvcache_bindTheOneBlockSizeOfKvBlockTokens(int blockTokens) throws ReflectiveOperationException {
        RenderedChart chart = RenderedChart.parse(Chart.template(new Chart.ValueSet("defaults", null),
                Map.of("kvBlockTokens", Integer.toString(blockTokens))));
        assertThat(chart.one(V1ConfigMap.class, Chart.RELEASE + "-gateway").getData())
                .containsEntry("MOEMESH_GATEWAY_KV_BLOCK_TOKENS", Integer.toString(blockTokens));
        assertThat(chart.one(V1ConfigMap.class, Chart.RELEASE + "-kvcache").getData())
                .containsEntry("MOEMESH_KVCACHE_BLOCK_TOKENS", Integer.toString(blockTokens));
        Map<String, Object> bound = new java.util.HashMap<>();
        for (RenderedChart.Workload w : chart.workloads()) {
            V1Container c = w.template().getSpec().getContainers().getFirst();
            if (c.getName().equals("gateway") || c.getName().equals("kvcache")) {
                Object settings = ServiceSettings.forContainer(c.getName())
                        .bind(ContainerEnvironment.of(chart, w.template().getSpec(), c, root(w))).settings();
                // the settings classes come from the services' target/classes, not the compile class path
                bound.put(c.getName(), settings.getClass()
                        .getMethod(c.getName().equals("gateway") ? "kvBlockTokens" : "blockTokens").invoke(settings));
            }
        }
        assertThat(bound).containsOnly(Map.entry("gateway", blockTokens), Map.entry("kvcache", blockTokens));
    }

    /**
     * {@code helm upgrade --reuse-values} from a chart before kvBlockTokens renders with that chart's values.yaml,
     * which has no such key: the release must still install, with the one block size both services used before (16)
     * in both ConfigMaps, not fail the schema or render 0.
     */
    @Test
    void kvBlockTokensMissing_asAfterReuseValuesFromAnOlderChart_rendersSixteenInBothConfigMaps(@TempDir Path work)
            throws IOException {
        Path chart = Chart.copy(work);
        Path values = chart.resolve("values.yaml");
        Files.writeString(values, Files.readString(values).replaceFirst("(?m)^kvBlockTokens: 16\\R", ""));
        assertThat(Files.readString(values)).doesNotContainPattern("(?m)^kvBlockTokens:");
        RenderedChart rendered = RenderedChart.parse(Chart.template(chart, new Chart.ValueSet("defaults", null),
                Map.of()));
        assertThat(rendered.one(V1ConfigMap.class, Chart.RELEASE + "-gateway").getData())
                .containsEntry("MOEMESH_GATEWAY_KV_BLOCK_TOKENS", "16");
        assertThat(rendered.one(V1ConfigMap.class, Chart.RELEASE + "-kvcache").getData())
                .containsEntry("MOEMESH_KVCACHE_BLOCK_TOKENS", "16");
    }

    @Test
    void misspeltVariable_fromAComponentsEnv_failsNamingTheVariableAndTheContainer() {
        RenderedChart chart = RenderedChart.parse(Chart.template(new Chart.ValueSet("defaults", null),
                Map.of("kvcache.env.MOEMESH_KVCACHE_MODEL_DIR", "/models/other")));
        assertThat(problems(chart)).singleElement().asString()
                .contains("container kvcache", "MOEMESH_KVCACHE_MODEL_DIR is no setting of");
    }

    @Test
    void variableOfAnotherService_failsNamingIt() {
        RenderedChart chart = RenderedChart.parse(Chart.template(new Chart.ValueSet("defaults", null),
                Map.of("router.env.MOEMESH_EXPERT_DRAIN_GRACE", "20s")));
        assertThat(problems(chart)).singleElement().asString()
                .contains("container router", "MOEMESH_EXPERT_DRAIN_GRACE is no setting of");
    }

    @Test
    void valueTheSettingsRecordRefuses_failsWithTheRecordsMessage() {
        RenderedChart chart = RenderedChart.parse(Chart.template(new Chart.ValueSet("defaults", null),
                Map.of("gateway.env.MOEMESH_GATEWAY_ADMISSION_MAX_CHAT_MESSAGES", "0")));
        assertThat(problems(chart)).singleElement().asString()
                .contains("container gateway", "moemesh.gateway.admission.max-chat-messages must be ≥ 1, got 0");
    }

    @Test
    void nameOutsideMoemeshAndTheAllowList_failsNamingIt() {
        RenderedChart chart = RenderedChart.parse(Chart.template(new Chart.ValueSet("defaults", null),
                Map.of("gateway.env.SERVER_PROT", "8080")));
        assertThat(problems(chart)).singleElement().asString()
                .contains("container gateway", "SERVER_PROT is neither");
    }

    @Test
    void unknownContainer_isNoServiceOfTheMesh() {
        assertThatThrownBy(() -> ServiceSettings.forContainer("sidecar")).hasMessageContaining("sidecar");
    }
}
