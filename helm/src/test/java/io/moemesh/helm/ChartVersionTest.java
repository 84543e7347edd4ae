package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.yaml.snakeyaml.Yaml;

/**
 * Chart.yaml's rule for its version: raised once per release whose chart changed, the upgrade notes of
 * docs/kubernetes.md ("Upgrading from an earlier version of the chart") listing the changes under the version that
 * brought them, the newest first. So the newest version there is the chart's.
 */
class ChartVersionTest {
    private static final Path DOCS = Path.of("..", "docs", "kubernetes.md");
    private static final Pattern NOTES_VERSION = Pattern.compile("\\*\\*To ([0-9]+\\.[0-9]+\\.[0-9]+)\\*\\*");

    /** Chart.yaml's version. */
    static String version() {
        try {
            Map<String, Object> chart = new Yaml().load(Files.readString(Chart.DIR.resolve("Chart.yaml")));
            return chart.get("version").toString();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Test
    void chartVersion_isTheNewestVersionOfTheUpgradeNotes() throws IOException {
        String docs = Files.readString(DOCS);
        assertThat(docs).contains("### Upgrading from an earlier version of the chart");
        String notes = docs.substring(docs.indexOf("### Upgrading from an earlier version of the chart"));
        Matcher newest = NOTES_VERSION.matcher(notes);

        assertThat(newest.find()).as("a \"**To <version>**\" in the upgrade notes").isTrue();
        assertThat(version()).isEqualTo(newest.group(1));
    }
}
