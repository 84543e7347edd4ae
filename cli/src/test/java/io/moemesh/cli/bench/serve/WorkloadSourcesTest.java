package io.moemesh.cli.bench.serve;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import java.io.BufferedReader;
import java.io.StringReader;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

class WorkloadSourcesTest {

    static Path resource(String name) {
        try {
            return Path.of(WorkloadSourcesTest.class.getResource("/bench/" + name).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    @Test
    void azureTrace_rowsBecomeArrivalOffsetsAndLengths_blankLinesSkipped() {
        List<AzureTrace.Row> rows = AzureTrace.read(resource("azure_tiny.csv"), 100);

        assertThat(rows).hasSize(4);
        assertThat(rows).extracting(AzureTrace.Row::arrivalSeconds).containsExactly(0.0, 0.25, 1.5, 3.0);
        assertThat(rows).extracting(AzureTrace.Row::contextTokens).containsExactly(100, 40, 900, 60);
        assertThat(rows).extracting(AzureTrace.Row::generatedTokens).containsExactly(20, 300, 10, 5);
    }

    @Test
    void azureTrace_limitTakesTheFirstRows() {
        assertThat(AzureTrace.read(resource("azure_tiny.csv"), 2)).extracting(AzureTrace.Row::contextTokens)
                .containsExactly(100, 40);
    }

    @Test
    void azureTrace_sevenFractionalDigitsAreKept() throws Exception {
        String csv = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n"
                + "2023-11-16 18:15:50.9951690,396,109\n";
        List<AzureTrace.Row> rows = AzureTrace.parse(new BufferedReader(new StringReader(csv)), "x.csv", 10);
        assertThat(rows.get(1).arrivalSeconds()).isCloseTo(4.314579, within(1e-9));
    }

    @Test
    void azureTrace_badInputNamesFileAndLine() {
        String csv = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,12,x\n";
        assertThatThrownBy(() -> AzureTrace.parse(new BufferedReader(new StringReader(csv)), "bad.csv", 10))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("bad.csv:2");
        assertThatThrownBy(() -> AzureTrace.parse(new BufferedReader(new StringReader("a,b\n")), "h.csv", 10))
                .hasMessageContaining("no column TIMESTAMP");
        assertThatThrownBy(() -> AzureTrace.read(Path.of("no/such.csv"), 1)).hasMessageContaining("file not found");
    }

    @Test
    void shareGpt_firstHumanTurns_emptyOnesSkipped() {
        assertThat(ShareGptPrompts.read(resource("sharegpt_tiny.json"))).containsExactly(
                "Write a haiku about streams.", "Explain paged attention in one paragraph.",
                "List three uses of a mixture of experts.");
    }

    @Test
    void shareGpt_sampleIsASeededShuffle_cyclingWhenMoreAreAsked() {
        List<String> prompts = List.of("a", "b", "c", "d", "e");
        List<String> s1 = ShareGptPrompts.sample(prompts, 7, 42);

        assertThat(ShareGptPrompts.sample(prompts, 7, 42)).isEqualTo(s1);
        assertThat(s1.subList(0, 5)).containsExactlyInAnyOrderElementsOf(prompts);
        assertThat(s1.subList(5, 7)).isEqualTo(s1.subList(0, 2));
        assertThat(List.of(1L, 2L, 3L, 4L, 5L)).anySatisfy(seed ->
                assertThat(ShareGptPrompts.sample(prompts, 5, seed)).isNotEqualTo(s1.subList(0, 5)));
    }

    @Test
    void shareGpt_notAnArrayIsRejected() {
        assertThatThrownBy(() -> ShareGptPrompts.parse(tools.jackson.databind.json.JsonMapper.builder().build()
                .readTree("{\"a\": 1}"), "x.json")).hasMessageContaining("expected a JSON array");
    }
}
