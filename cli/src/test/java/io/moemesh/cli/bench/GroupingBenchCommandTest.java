package io.moemesh.cli.bench;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.cli.CliRun;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class GroupingBenchCommandTest {

    /**
     * Four sequences of three positions, one MoE layer, top-1 of 4 experts: sequences 0 and 2 always use expert 0,
     * 1 and 3 expert 1. Contiguous micro-batches {0, 1} {2, 3} call both experts each; grouped by the previous
     * token's path, {0, 2} {1, 3} call one each.
     */
    private static Path trace(Path dir) throws IOException {
        StringBuilder csv = new StringBuilder("seq,pos,token_id,layer,e0,w0\n");
        for (int s = 0; s < 4; s++) {
            for (int p = 0; p < 3; p++) {
                csv.append(s).append(',').append(p).append(",7,0,").append(s % 2).append(",1.0\n");
            }
        }
        csv.append("9,0,7,0,3,1.0\n");
        return Files.writeString(dir.resolve("routes.csv"), csv);
    }

    @Test
    void groupedByPredictedPath_halvesTheExpertAndInstanceCalls_whenPathsRepeat(@TempDir Path dir) throws IOException {
        CliRun r = CliRun.of("bench", "grouping", "--trace", trace(dir).toString(), "--instances", "2");
        assertThat(r.exitCode()).as(r.err()).isZero();
        assertThat(r.out()).contains(": 4 sequences, 2 decode steps (8 sequence-steps), 1 MoE layers, top-1 of 4 "
                + "experts, 2 micro-batches per step");
        assertThat(r.out()).contains("Path locality: 1.000");
        assertThat(r.out()).contains("One batch per step (no micro-batches): 2.00 expert calls per step.");
        assertThat(r.out()).contains("| contiguous | 4.00 | 1.000 | 4.00 | 1.000 |");
        assertThat(r.out()).contains("| predicted-path | 2.00 | 0.500 | 2.00 | 0.500 |");
        assertThat(r.out()).contains("| oracle | 2.00 | 0.500 | 2.00 | 0.500 |");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "--micro-batches 1 | --micro-batches must be at least 2, got 1",
            "--segments 0 | --segments must be at least 1, got 0",
            "--instances 0 | --instances must all be at least 1, got [0]"})
    void badOptions_exitTwo_withOneLineNamingTheOption(String args, String message, @TempDir Path dir)
            throws IOException {
        String[] extra = args.split(" ");
        CliRun r = CliRun.of("bench", "grouping", "--trace", trace(dir).toString(), extra[0], extra[1]);
        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.err().strip()).isEqualTo("moemesh grouping: " + message);
    }
}
