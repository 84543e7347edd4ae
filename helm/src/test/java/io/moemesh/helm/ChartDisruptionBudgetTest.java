package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;

import io.kubernetes.client.openapi.models.V1Deployment;
import io.kubernetes.client.openapi.models.V1PodDisruptionBudget;
import io.kubernetes.client.openapi.models.V1StatefulSet;
import io.kubernetes.client.openapi.models.V2HorizontalPodAutoscaler;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A PodDisruptionBudget keeps pods up only while its workload runs more pods than the budget lets go: one that
 * allows as many as the workload's fewest pods would let a node drain evict all of them and only look like
 * protection. So every rendered PDB lets go fewer pods than its workload's fewest (its replicas, or its HPA's
 * minReplicas), and a single gateway or kvcache pod gets none (docs/kubernetes.md, "Node drains").
 */
class ChartDisruptionBudgetTest {

    static List<Chart.ValueSet> valueSets() {
        return Chart.valueSets();
    }

    /** The fewest pods the PDB's workload runs: its replicas, or its HPA's minReplicas, whichever is fewer. */
    private static int fewestPods(RenderedChart chart, RenderedChart.Workload w) {
        Integer replicas = switch (w.kind()) {
            case "Deployment" -> chart.one(V1Deployment.class, w.name()).getSpec().getReplicas();
            case "StatefulSet" -> chart.one(V1StatefulSet.class, w.name()).getSpec().getReplicas();
            default -> throw new AssertionError("a PDB over a " + w.kind());
        };
        int fewest = replicas == null ? Integer.MAX_VALUE : replicas;
        for (V2HorizontalPodAutoscaler hpa : chart.all(V2HorizontalPodAutoscaler.class)) {
            if (hpa.getSpec().getScaleTargetRef().getName().equals(w.name())) {
                fewest = Math.min(fewest, hpa.getSpec().getMinReplicas());
            }
        }
        // Neither replicas nor an HPA: Kubernetes runs one.
        return fewest == Integer.MAX_VALUE ? 1 : fewest;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void everyRenderedPdb_letsGoFewerPodsThanItsWorkloadsFewest(Chart.ValueSet set) {
        RenderedChart chart = Chart.render(set);
        for (V1PodDisruptionBudget pdb : chart.all(V1PodDisruptionBudget.class)) {
            RenderedChart.Workload w = chart.workloads().stream()
                    .filter(x -> ChartRenderTest.selects(pdb.getSpec().getSelector().getMatchLabels(), x))
                    .findFirst().orElseThrow();
            assertThat(pdb.getSpec().getMaxUnavailable().getIntValue())
                    .as("PDB %s's maxUnavailable against %s's fewest pods", pdb.getMetadata().getName(), w.name())
                    .isLessThan(fewestPods(chart, w));
        }
    }

    @Test
    void singleKvcachePod_getsNoPdb_twoPodsGetOneThatKeepsOneUp() {
        RenderedChart one = Chart.render(Chart.valueSets().getFirst());
        assertThat(one.find(V1PodDisruptionBudget.class, "moemesh-kvcache")).isEmpty();

        RenderedChart two = RenderedChart.parse(Chart.template(Chart.valueSets().getFirst(),
                Map.of("kvcache.replicas", "2")));
        assertThat(two.one(V1PodDisruptionBudget.class, "moemesh-kvcache").getSpec().getMaxUnavailable().getIntValue())
                .isOne();
    }

    @Test
    void singleGateway_getsNoPdb_asFixedReplicasOrAsTheHpasMinimum() {
        RenderedChart fixed = RenderedChart.parse(Chart.template(Chart.valueSets().getFirst(),
                Map.of("gateway.autoscaling.enabled", "false", "gateway.replicas", "1")));
        assertThat(fixed.find(V1PodDisruptionBudget.class, "moemesh-gateway")).isEmpty();

        RenderedChart autoscaled = RenderedChart.parse(Chart.template(Chart.valueSets().getFirst(),
                Map.of("gateway.autoscaling.minReplicas", "1")));
        assertThat(autoscaled.find(V1PodDisruptionBudget.class, "moemesh-gateway")).isEmpty();

        // The defaults' two gateways: a drain evicts the second only once the first one's replacement is Ready.
        assertThat(Chart.render(Chart.valueSets().getFirst()).find(V1PodDisruptionBudget.class, "moemesh-gateway"))
                .isPresent();
    }
}
