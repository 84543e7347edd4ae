package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Broken values make {@code helm template} (and so {@code helm install}) fail with a message naming the value:
 * values.schema.json for types, enums and ranges (Helm reports them as {@code at '/expertService/gpus'}), the
 * templates' {@code fail} for everything that depends on several values or on a blank string.
 */
class ChartBadValuesTest {

    static Stream<Arguments> badValues() {
        return Stream.of(
                // the schema: wrong type, out of range, unknown choice, missing required part
                bad("expertService.gpus", "-1"),
                bad("gateway.replicas", "two"),
                bad("gateway.grpcPort", "70000"),
                bad("expertService.managementPort", "0"),
                bad("tlsMode", "none"),
                bad("model.source", "s3"),
                bad("expertService.device", "tpu"),
                bad("expertService.backend", "gpu"),
                bad("router.planner", "best"),
                bad("kvcache.policy", "lfu"),
                bad("router.expertReplicas", "0"),
                bad("gateway.image.repository", ""),
                bad("kvcache.persistence.size", ""),
                bad("gateway.drain.shutdownGraceSeconds", "0"),
                bad("tls.reloadPeriod", "soon"),
                bad("tls.reloadPeriod", "30s"),
                bad("router.autoReplanPeriod", "5s"),
                bad("kvcache.terminationGracePeriodSeconds", "10"),
                // the kvcache-service refuses an empty tier at startup
                bad("kvcache.dramBytes", "0"),
                bad("kvcache.ssdBytes", "0"),
                bad("gateway.resources.limits", "null", "gateway.resources"),
                bad("expertService.resources.requests.memory", "null", "expertService.resources.requests"),
                bad("gateway.unknownSetting", "1", "gateway"),
                // the templates' checks
                bad("expertService.gpus", "0"),
                bad("model.pvc.claimName", ""),
                bad("model.path", " "),
                bad("model.mountPath", "models", "model.mountPath"),
                bad(Map.of("model.source", "initContainer", "model.initContainer.image", ""),
                        "model.initContainer.image"),
                bad(Map.of("expertService.gpuResource", ""), "expertService.gpuResource"),
                bad(Map.of("gateway.autoscaling.minReplicas", "9"), "gateway.autoscaling.minReplicas"),
                bad(Map.of("expertService.autoscaling.minReplicas", "20"), "expertService.autoscaling.minReplicas"),
                bad(Map.of("router.expertReplicas", "5"), "router.expertReplicas"),
                bad(Map.of("expertService.autoscaling.enabled", "false", "expertService.replicas", "1"),
                        "router.expertReplicas"),
                bad(Map.of("expertService.pdb.maxUnavailable", "2"), "expertService.pdb.maxUnavailable"),
                bad(Map.of("tls.certManager.enabled", "true", "tls.certManager.issuerRef.name", ""),
                        "tls.certManager.issuerRef.name"),
                // A ClusterIssuer's CA may sign for other namespaces: its certificates would join this mesh.
                bad(Map.of("tls.certManager.enabled", "true", "tls.certManager.issuerRef.kind", "ClusterIssuer"),
                        "tls.certManager.dedicatedCa"),
                bad(Map.of("gateway.autoscaling.servingMetric.enabled", "true",
                        "gateway.autoscaling.servingMetric.name", ""), "gateway.autoscaling.servingMetric.name"),
                bad(Map.of("router.persistence.enabled", "true", "router.persistence.size", ""),
                        "router.persistence.size"),
                bad("gateway.env.MOEMESH_GATEWAY_GRPC_PORT", "9001", "gateway.env.MOEMESH_GATEWAY_GRPC_PORT"),
                bad("expertService.env.MOEMESH_EXPERT_PLACER_IDENTITIES", "anyone",
                        "expertService.env.MOEMESH_EXPERT_PLACER_IDENTITIES"),
                bad("router.env.MOEMESH_ROUTER_DISCOVERY_MODE", "static", "router.env.MOEMESH_ROUTER_DISCOVERY_MODE"),
                bad("kvcache.env.JDK_JAVA_OPTIONS", "-Xmx1g", "kvcache.env.JDK_JAVA_OPTIONS"),
                bad("gateway.env.BAD-NAME", "1", "gateway.env.BAD-NAME"),
                // Spring's relaxed binding reads MOEMESH_GATEWAY_GRPCPORT (even before _GRPC_PORT) and the lower-case
                // forms for the same setting: the chart's names under another spelling are refused too
                bad("gateway.env.MOEMESH_GATEWAY_GRPCPORT", "9001", "gateway.env.MOEMESH_GATEWAY_GRPCPORT"),
                bad("gateway.env.MOEMESH_GATEWAY_SHUTDOWNGRACE", "5s", "gateway.env.MOEMESH_GATEWAY_SHUTDOWNGRACE"),
                bad("kvcache.env.moemesh_kvcache_ssd_bytes", "1", "kvcache.env.moemesh_kvcache_ssd_bytes"),
                bad("gateway.env.MOEMESH_GATEWAY_ROUTER_WATCHERID", "gw-1",
                        "gateway.env.MOEMESH_GATEWAY_ROUTER_WATCHERID"),
                // one setting twice under two spellings: which one Spring takes is not the user's to guess
                bad(Map.of("gateway.env.MOEMESH_GATEWAY_ADMISSION_MAX_WAITING", "10",
                        "gateway.env.MOEMESH_GATEWAY_ADMISSION_MAXWAITING", "20"),
                        "gateway.env.MOEMESH_GATEWAY_ADMISSION_MAX_WAITING"),
                bad("gateway.env.MOEMESH_GATEWAY_KVCACHE_DRAIN_TIMEOUT", "soon",
                        "gateway.env.MOEMESH_GATEWAY_KVCACHE_DRAIN_TIMEOUT"),
                // cert-manager reads Go durations (no d) and refuses a duration below 1h, a renewBefore below 5m
                // and a renewBefore not below the duration
                bad("tls.certManager.duration", "90d"),
                bad("tls.certManager.renewBefore", "15d"),
                bad(Map.of("tls.certManager.enabled", "true", "tls.certManager.duration", "30m"),
                        "tls.certManager.duration"),
                bad(Map.of("tls.certManager.enabled", "true", "tls.certManager.renewBefore", "2m"),
                        "tls.certManager.renewBefore"),
                bad(Map.of("tls.certManager.enabled", "true", "tls.certManager.renewBefore", "2160h"),
                        "tls.certManager.renewBefore"),
                bad(Map.of("tls.certManager.enabled", "true", "tls.certManager.duration", "2h",
                        "tls.certManager.renewBefore", "150m"), "tls.certManager.renewBefore"),
                // an HPA target is a positive Kubernetes quantity
                bad("gateway.autoscaling.servingMetric.targetAverageValue", "lots"),
                bad("gateway.autoscaling.servingMetric.targetAverageValue", "8 requests"),
                bad("expertService.autoscaling.servingMetric.targetAverageValue", "0"),
                bad("gateway.autoscaling.servingMetric.targetAverageValue", "0m"),
                bad("kvcache.startupProbeSeconds", "-1"),
                // names of the containers' own env (from the pod), which would win over the ConfigMap silently
                bad("gateway.env.MOEMESH_GATEWAY_ROUTER_WATCHER_ID", "gw-1",
                        "gateway.env.MOEMESH_GATEWAY_ROUTER_WATCHER_ID"),
                bad("router.env.MOEMESH_ROUTER_DISCOVERY_NAMESPACE", "other",
                        "router.env.MOEMESH_ROUTER_DISCOVERY_NAMESPACE"),
                bad("expertService.env.MOEMESH_EXPERT_INSTANCE_ID", "expert-0",
                        "expertService.env.MOEMESH_EXPERT_INSTANCE_ID"),
                // the SSD volume must hold ssdBytes ÷ the compaction live fraction (ChartKvCacheVolumeTest)
                bad(Map.of("kvcache.ssdBytes", "90000000000"), "kvcache.ssdBytes"),
                bad(Map.of("kvcache.persistence.size", "80Gi"), "kvcache.persistence.size"),
                bad(Map.of("kvcache.env.MOEMESH_KVCACHE_COMPACTION_LIVE_FRACTION", "0.4"), "kvcache.ssdBytes"),
                bad(Map.of("kvcache.env.MOEMESH_KVCACHE_COMPACTIONLIVEFRACTION", "0.4"), "kvcache.ssdBytes"),
                // ... and the DRAM tier a stop writes to it
                bad(Map.of("kvcache.dramBytes", "17179869184", "kvcache.resources.limits.memory", "24Gi"),
                        "kvcache.ssdBytes"),
                // ... and the JVM's heap, where the DRAM tier lives: the service refuses to start otherwise
                // (checkDramFitsHeap: at most the larger of 3/4 of the heap and the heap less 256 MiB)
                bad(Map.of("kvcache.dramBytes", "6442450944"), "kvcache.resources.limits.memory (8Gi)"),
                bad(Map.of("kvcache.resources.limits.memory", "5Gi"), "kvcache.dramBytes (4294967296)"),
                bad(Map.of("kvcache.javaOptions", "-XX:MaxRAMPercentage=50"), "-XX:MaxRAMPercentage=50"),
                bad(Map.of("kvcache.javaOptions", "-Xmx4g"), "-Xmx4g in kvcache.javaOptions"),
                bad(Map.of("jvm.extraOptions", "-Xmx2g", "kvcache.javaOptions", "-XX:MaxRAMPercentage=70"),
                        "-Xmx2g in kvcache.javaOptions or jvm.extraOptions"),
                // the block size is one value for the gateway and the kvcache-service, which refuses any other
                bad("kvBlockTokens", "0"),
                bad("kvBlockTokens", "2048"),
                bad("gateway.env.MOEMESH_GATEWAY_KV_BLOCK_TOKENS", "32", "from kvBlockTokens"),
                bad("gateway.env.MOEMESH_GATEWAY_KVBLOCKTOKENS", "32", "from kvBlockTokens"),
                bad("kvcache.env.MOEMESH_KVCACHE_BLOCK_TOKENS", "32", "from kvBlockTokens"),
                bad("kvcache.env.moemesh_kvcache_blocktokens", "16", "from kvBlockTokens"),
                // durations the chart reads from kvcache.env (the volume check, the stop's grace)
                bad("kvcache.env.MOEMESH_KVCACHE_COMPACTION_PERIOD", "soon",
                        "kvcache.env.MOEMESH_KVCACHE_COMPACTION_PERIOD"),
                bad("kvcache.env.MOEMESH_KVCACHE_SHUTDOWN_GRACE", "-5s", "kvcache.env.MOEMESH_KVCACHE_SHUTDOWN_GRACE"),
                // a kvcache pod's grace below its stop (ChartStartupAndStopBudgetTest), and the schema's floor
                bad(Map.of("kvcache.terminationGracePeriodSeconds", "60"), "kvcache.terminationGracePeriodSeconds"),
                bad("kvcache.terminationGracePeriodSeconds", "-1"),
                bad("expertService.minReadySeconds", "-1"),
                bad("gateway.minReadySeconds", "soon"),
                // who may Replan: mesh identity names, and a placer certificate only where it can be issued and used
                bad("router.operatorIdentities[0]", "Ops_Team", "router.operatorIdentities.0"),
                bad("router.placerCertificate.enabled", "true"),
                bad(Map.of("tls.certManager.enabled", "true", "router.placerCertificate.enabled", "true",
                        "router.operatorIdentities[0]", "ops"), "router.operatorIdentities"));
    }

    @ParameterizedTest(name = "{0} -> names {1}")
    @MethodSource("badValues")
    void brokenValue_failsTheRender_namingTheValue(Map<String, String> overrides, String valueName) {
        assertThatThrownBy(() -> Chart.template(Chart.valueSets().getFirst(), overrides))
                .satisfies(e -> assertThat(e.getMessage())
                        .containsAnyOf(valueName, "'/" + valueName.replace('.', '/') + "'"));
    }

    private static Arguments bad(String key, String value) {
        return bad(key, value, key);
    }

    private static Arguments bad(String key, String value, String valueName) {
        return bad(Map.of(key, value), valueName);
    }

    private static Arguments bad(Map<String, String> overrides, String valueName) {
        return Arguments.of(new LinkedHashMap<>(overrides), valueName);
    }
}
