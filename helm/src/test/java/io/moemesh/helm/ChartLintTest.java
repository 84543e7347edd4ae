package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;

import com.marcnuri.helm.LintResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

class ChartLintTest {

    static List<Chart.ValueSet> valueSets() {
        return Chart.valueSets();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void lintStrict_passes_withoutWarnings(Chart.ValueSet set, @TempDir Path work) throws Exception {
        LintResult result = Chart.lint(set, work);
        assertThat(result.getMessages()).as("helm lint --strict messages")
                .noneMatch(m -> m.contains("[WARNING]") || m.contains("[ERROR]"));
        assertThat(result.isFailed()).as("helm lint --strict failed: %s", result.getMessages()).isFalse();
    }

    /**
     * Lint checks a value set against values.schema.json. (Helm's lint mode turns the templates' {@code fail}
     * into an INFO line, so those checks are ChartBadValuesTest's, through {@code helm template}.)
     */
    @org.junit.jupiter.api.Test
    void lintStrict_ofAValueSet_seesItsValues_andFailsOneTheSchemaRefuses(@TempDir Path work) throws Exception {
        Path broken = Files.writeString(work.resolve("broken-values.yaml"), "expertService:\n  gpus: -1\n");
        Path chartCopy = Files.createDirectories(work.resolve("copy"));
        LintResult result = Chart.lint(new Chart.ValueSet("broken", broken), chartCopy);
        assertThat(result.isFailed()).isTrue();
        assertThat(String.join("\n", result.getMessages())).contains("/expertService/gpus");
    }
}
