package io.moemesh.cli.bench;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.cli.CliRun;
import io.moemesh.model.golden.TestModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** {@code moemesh bench weights-load} on a bundled model: the report's shape and byte counts, never its timings. */
class WeightsLoadBenchCommandTest {

    @Test
    void weightsLoad_printsTwoDiskRowsAndTheMappedRows_coveringEveryTensorByte() throws Exception {
        Path dir = TestModels.dir(TestModels.MIXTRAL_BF16);
        CliRun r = CliRun.of("bench", "weights-load", "--model-dir", dir.toString(), "--rounds", "2");
        assertThat(r.exitCode()).as(r.err()).isZero();
        List<String[]> rows = r.out().lines().filter(l -> l.startsWith("| disk") || l.startsWith("| weights"))
                .map(l -> l.split("\\|")).toList();
        assertThat(rows).extracting(c -> c[1].strip().split(" ")[0]).containsExactly("disk", "disk", "weights",
                "weights");
        long fileBytes = WeightsLoadBenchCommand.safetensors(dir).stream().mapToLong(WeightsLoadBenchCommandTest::size)
                .sum();
        assertThat(Long.parseLong(rows.get(0)[2].strip())).as("the disk rows read the whole files").isEqualTo(fileBytes);
        long tensorBytes = Long.parseLong(rows.get(2)[2].strip());
        assertThat(tensorBytes).as("every tensor byte, the files less their JSON headers")
                .isPositive().isLessThan(fileBytes).isGreaterThan(fileBytes * 9 / 10);
        assertThat(WeightsLoadBenchCommand.touchAll(WeightsLoadBenchCommand.safetensors(dir))).isEqualTo(tensorBytes);
        assertThat(Long.parseLong(rows.get(3)[2].strip())).as("load() covers the same bytes").isEqualTo(tensorBytes);
        for (String[] row : rows) {
            assertThat(Double.parseDouble(row[5].strip())).as("ratio of %s", row[1]).isPositive();
            assertThat(row[6].strip().split(" / ")).as("one rate per round of %s", row[1]).hasSize(2);
        }
        assertThat(r.out()).containsPattern("Weights mapped and touched ÷ disk: [0-9.]+; loaded ÷ disk: [0-9.]+");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "--rounds 0 | --rounds must be at least 1, got 0",
            "--model L | unknown bench model L: use S or M"})
    void badOptions_exitTwo_withOneLineNamingTheOption(String args, String message, @TempDir Path tmp) {
        CliRun r = CliRun.of(("bench weights-load --models-dir " + tmp + " " + args).split(" "));
        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.err().strip()).isEqualTo("moemesh weights-load: " + message);
    }

    @Test
    void aDirectoryWithoutSafetensors_exitsTwo_namingIt(@TempDir Path tmp) {
        CliRun r = CliRun.of("bench", "weights-load", "--model-dir", tmp.toString());
        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.err().strip()).isEqualTo("moemesh weights-load: --model-dir " + tmp + " has no .safetensors files");
    }

    private static long size(Path f) {
        try {
            return Files.size(f);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
