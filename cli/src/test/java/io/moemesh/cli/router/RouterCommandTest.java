package io.moemesh.cli.router;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.cli.CliRun;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class RouterCommandTest {

    @TempDir
    Path dir;

    Path whole;

    /**
     * A FLAME-style prefill CSV: 60 tokens, layers 2..5, top-2 of 8, each layer's experts a fixed function of the
     * previous layer's (with some noise), so that transitions are learnable.
     */
    @BeforeEach
    void writeTrace() throws IOException {
        Random random = new Random(7);
        StringBuilder csv = new StringBuilder("token_idx,token_id,layer,e0,e1,w0,w1\n");
        for (int t = 0; t < 60; t++) {
            int a = random.nextInt(8);
            int b = (a + 1 + random.nextInt(7)) % 8;
            for (int layer = 2; layer <= 5; layer++) {
                csv.append(t).append(',').append(100 + t % 7).append(',').append(layer).append(',').append(a)
                        .append(',').append(b).append(",0.6,0.3\n");
                int na = random.nextInt(5) == 0 ? random.nextInt(8) : (a * 3 + 1) % 8;
                int nb = (b * 3 + 1) % 8;
                a = na;
                b = nb == na ? (na + 1) % 8 : nb;
            }
        }
        whole = dir.resolve("routes.csv");
        Files.writeString(whole, csv);
    }

    private CliRun split() {
        return CliRun.of("router", "split-trace", "--trace", whole.toString(), "--first-tokens", "40",
                "--out-train", dir.resolve("train.csv").toString(), "--out-test", dir.resolve("test.csv").toString());
    }

    @Test
    void splitTrace_writesTheFirstTokensAndTheRest_withTheSameHeader() throws IOException {
        CliRun r = split();

        assertThat(r.exitCode()).as(r.err()).isZero();
        List<String> train = Files.readAllLines(dir.resolve("train.csv"));
        List<String> test = Files.readAllLines(dir.resolve("test.csv"));
        List<String> original = Files.readAllLines(whole);
        assertThat(train.getFirst()).isEqualTo(original.getFirst());
        assertThat(test.getFirst()).isEqualTo(original.getFirst());
        assertThat(train).hasSize(1 + 40 * 4);
        assertThat(test).hasSize(1 + 20 * 4);
        assertThat(test.get(1)).startsWith("40,");
        assertThat(r.out()).contains("40 tokens to", "20 to", "FLAME_PREFILL_CSV");
    }

    @Test
    void evalPredict_printsPerLayerAndOverallRecall_withKAnd2K_forA124_andChance() throws IOException {
        split();
        Path dump = dir.resolve("dump.jsonl");

        CliRun r = CliRun.of("router", "eval-predict", "--train", dir.resolve("train.csv").toString(), "--trace",
                dir.resolve("test.csv").toString(), "--predictor", "transitions", "--dump", dump.toString());

        assertThat(r.exitCode()).as(r.err()).isZero();
        assertThat(r.out()).contains("| layer | A=1, k | A=1, 2k | A=2, k | A=2, 2k | A=4, k | A=4, 2k |")
                .contains("Predictor transitions").contains("top-2 of 8 experts")
                .contains("Chance: 0.250 with k = 2 guesses, 0.500 with 2k = 4.");
        // layer 2 has no earlier layer; layer 5 has three: A = 4 is never scored here
        assertThat(r.out()).contains("| 2 | – | – | – | – | – | – |");
        assertThat(r.out().lines().filter(l -> l.startsWith("| 5 | ")).findFirst().orElseThrow())
                .matches("\\| 5 \\| [01]\\.\\d{3} \\| [01]\\.\\d{3} \\| [01]\\.\\d{3} \\| [01]\\.\\d{3} \\| – \\| – \\|");
        assertThat(r.out()).containsPattern("\\| \\*\\*overall\\*\\* \\| \\*\\*[01]\\.\\d{3}\\*\\* \\|");
        // 20 tokens × (3 layers with 1 earlier layer + 2 with 2)
        assertThat(Files.readAllLines(dump)).hasSize(20 * 5)
                .first().asString().matches("\\{\"key\": \"40\", \"layer\": 3, \"ahead\": 1, \"predicted\": "
                        + "\\[\\d, \\d, \\d, \\d\\]\\}");
    }

    @Test
    void evalPredict_withRelabelSeed_saysSo_andDefaultPredictorIsLearned() {
        split();

        CliRun r = CliRun.of("router", "eval-predict", "--train", dir.resolve("train.csv").toString(), "--trace",
                dir.resolve("test.csv").toString(), "--relabel-seed", "3");

        assertThat(r.exitCode()).as(r.err()).isZero();
        assertThat(r.out()).contains("Predictor learned").contains("experts relabelled (seed 3)");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "eval-predict --trace TEST | --train FILE is required",
            "eval-predict --train TRAIN | --trace FILE is required",
            "eval-predict --train TRAIN --trace TEST --predictor oracle | --predictor: unknown predictor 'oracle' "
                    + "(known: learned, transitions, pooled, token, popularity)",
            "eval-predict --train MISSING --trace TEST | --train: MISSING: no such file",
            "eval-predict --train BAD --trace TEST | --train: BAD:3: column 'e1' is not an integer: 'x'",
            "eval-predict --train TRAIN --trace OTHER | is not from the model of",
            "eval-predict --train TRAIN --trace TEST --dump NODIR | --dump: cannot write NODIR",
            "split-trace --trace WHOLE --out-train A --out-test B | --first-tokens N is required",
            "split-trace --trace WHOLE --first-tokens 0 --out-train A --out-test B "
                    + "| --first-tokens must be at least 1, got 0",
            "split-trace --trace WHOLE --first-tokens 60 --out-train A --out-test B | --first-tokens 60 leaves no test "
                    + "tokens",
            "split-trace --trace WHOLE --first-tokens 10 --out-test B | --out-train FILE is required"})
    void badOptions_exitTwo_withOneLineNamingTheOption(String args, String message) throws IOException {
        split();
        Path bad = dir.resolve("bad.csv");
        Files.writeString(bad, "token_idx,token_id,layer,e0,e1,w0,w1\n0,1,2,3,4,0.5,0.4\n0,1,3,3,x,0.5,0.4\n");
        Path other = dir.resolve("other.csv");
        Files.writeString(other, "token_idx,token_id,layer,e0,e1,e2,w0,w1,w2\n0,1,2,3,4,5,0.5,0.4,0.1\n"
                + "0,1,3,3,4,5,0.5,0.4,0.1\n0,1,4,3,4,5,0.5,0.4,0.1\n0,1,5,3,4,5,0.5,0.4,0.1\n");
        String[] argv = ("router " + args).split(" ");
        for (int i = 0; i < argv.length; i++) {
            argv[i] = switch (argv[i]) {
                case "TRAIN" -> dir.resolve("train.csv").toString();
                case "TEST" -> dir.resolve("test.csv").toString();
                case "WHOLE" -> whole.toString();
                case "MISSING" -> dir.resolve("missing.csv").toString();
                case "BAD" -> bad.toString();
                case "OTHER" -> other.toString();
                case "NODIR" -> dir.resolve("no/such/dir/dump.jsonl").toString();
                case "A" -> dir.resolve("a.csv").toString();
                case "B" -> dir.resolve("b.csv").toString();
                default -> argv[i];
            };
        }
        String expected = message.replace("MISSING", dir.resolve("missing.csv").toString())
                .replace("BAD", bad.toString()).replace("NODIR", dir.resolve("no/such/dir/dump.jsonl").toString());

        CliRun r = CliRun.of(argv);

        assertThat(r.exitCode()).as(r.err()).isEqualTo(2);
        assertThat(r.err().strip()).contains(expected).doesNotContain("Exception").hasLineCount(1);
        assertThat(r.out()).isEmpty();
    }
}
