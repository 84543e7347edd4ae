package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.kubernetes.client.openapi.models.V1Deployment;
import org.junit.jupiter.api.Test;

/** The reading the chart checks rely on: a field the Kubernetes model does not know fails, it is not dropped. */
class RenderedChartTest {

    @Test
    void parse_refusesAFieldTheKubernetesModelDoesNotKnow() {
        String misspelt = """
                apiVersion: apps/v1
                kind: Deployment
                metadata:
                  name: x
                spec:
                  template:
                    spec:
                      containers:
                        - name: a
                          readinesProbe: {}
                """;
        assertThatThrownBy(() -> RenderedChart.parse(misspelt)).hasMessageContaining("readinesProbe");
    }

    @Test
    void parse_keepsCertManagerResourcesAsMaps_andSkipsCommentOnlyDocuments() {
        RenderedChart chart = RenderedChart.parse("""
                ---
                # Source: only a comment
                ---
                apiVersion: cert-manager.io/v1
                kind: Certificate
                metadata:
                  name: c
                ---
                apiVersion: apps/v1
                kind: Deployment
                metadata:
                  name: d
                """);
        assertThat(chart.customResources()).singleElement().satisfies(c -> assertThat(c).containsEntry("kind", "Certificate"));
        assertThat(chart.all(V1Deployment.class)).singleElement()
                .satisfies(d -> assertThat(d.getMetadata().getName()).isEqualTo("d"));
    }
}
