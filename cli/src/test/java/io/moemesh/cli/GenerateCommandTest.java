package io.moemesh.cli;

import static io.moemesh.model.golden.JsonArrays.ints;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

class GenerateCommandTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    @TempDir
    Path tmp;

    static Stream<GoldenCase> cases() {
        return GoldenCase.all(TestModels.MIXTRAL, TestModels.MIXTRAL_BF16, TestModels.QWEN2_MOE).stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void jsonTrace_matchesGolden(GoldenCase g) {
        CliRun run = CliRun.of("generate", "--model", TestModels.dir(g.model()).toString(), "--prompt", g.prompt(),
                "--max-tokens", "16", "--json", "--trace");
        assertThat(run.exitCode()).as(run.err()).isZero();
        JsonNode j = JSON.readTree(run.lastLine());
        assertThat(ints(j.get("input_ids"))).containsExactly(g.inputIds());
        assertThat(ints(j.get("generated_ids"))).containsExactly(g.greedyIds());
        assertThat(j.get("text").stringValue()).isEqualTo(g.greedyText());
        float[] logits = new float[j.get("last_logits").size()];
        for (int i = 0; i < logits.length; i++) {
            logits[i] = j.get("last_logits").get(i).floatValue();
        }
        assertThat(logits).containsExactly(g.lastLogits(), within(1e-4f));
        JsonNode routes = j.get("router_topk");
        for (int l = 0; l < g.routerTopk().length; l++) {
            for (int p = 0; p < g.routerTopk()[l].length; p++) {
                assertThat(ints(routes.get(l).get(p))).containsExactly(g.routerTopk()[l][p]);
            }
        }
    }

    @Test
    void plainText_streamsTheGreedyText_andLogsGoToStderr() {
        GoldenCase g = GoldenCase.load(TestModels.MIXTRAL_BF16).get(2);
        CliRun run = CliRun.of("generate", "--model", TestModels.dir(g.model()).toString(), "--prompt", g.prompt(),
                "--max-tokens", "16");
        assertThat(run.exitCode()).isZero();
        assertThat(run.out()).isEqualTo(g.greedyText() + System.lineSeparator());
        assertThat(run.err()).contains("loaded");
    }

    @Test
    void seededSampling_isReproducible() {
        String model = TestModels.dir(TestModels.MIXTRAL).toString();
        String[] args = {"generate", "--model", model, "--prompt", "hello", "--temperature", "0.8", "--top-p", "0.9",
            "--seed", "11", "--max-tokens", "12", "--json"};
        assertThat(CliRun.of(args).lastLine()).isEqualTo(CliRun.of(args).lastLine());
    }

    /**
     * --max-tokens 2147483647 means "until the context is full", as --max-tokens equal to the context does: the prompt
     * length plus it overflowed int, and the negative sum sized the KV cache to one block of 16 positions.
     */
    @Test
    void maxTokensIntMax_generatesAsMuchAsMaxTokensEqualToTheContext() {
        String model = TestModels.dir(TestModels.MIXTRAL).toString();
        int context = ModelConfigReader.read(TestModels.dir(TestModels.MIXTRAL)).maxPositionEmbeddings();
        CliRun huge = CliRun.of("generate", "--model", model, "--prompt", "gRPC", "--max-tokens",
                Integer.toString(Integer.MAX_VALUE), "--json");
        CliRun whole = CliRun.of("generate", "--model", model, "--prompt", "gRPC", "--max-tokens",
                Integer.toString(context), "--json");
        assertThat(huge.exitCode()).as(huge.err()).isZero();
        assertThat(whole.exitCode()).as(whole.err()).isZero();
        JsonNode h = JSON.readTree(huge.lastLine());
        int[] expected = ints(JSON.readTree(whole.lastLine()).get("generated_ids"));
        assertThat(h.get("input_ids").size() + expected.length).as("past one KV block").isGreaterThan(16);
        assertThat(ints(h.get("generated_ids"))).containsExactly(expected);
    }

    @Test
    void promptFile_readsUtf8() throws IOException {
        Path f = tmp.resolve("prompt.txt");
        Files.writeString(f, "αβγ unicode and emoji 🙂 survive tokenization?");
        GoldenCase g = GoldenCase.load(TestModels.MIXTRAL).get(4);
        CliRun run = CliRun.of("generate", "--model", TestModels.dir(g.model()).toString(), "--prompt-file",
                f.toString(), "--json");
        assertThat(ints(JSON.readTree(run.lastLine()).get("input_ids"))).containsExactly(g.inputIds());
    }

    @ParameterizedTest(name = "{1}")
    @CsvSource(delimiter = '|', value = {
        "--model /nonexistent/model --prompt hi                  | model directory not found",
        "--model MIXTRAL --prompt-file /nonexistent.txt          | --prompt-file",
        "--model MIXTRAL --prompt hi --temperature -1            | temperature",
        "--model MIXTRAL --prompt hi --max-tokens 0              | max_tokens",
        "--model MIXTRAL --prompt hi --top-p 2                   | top_p",
        "--model MIXTRAL                                         | --prompt",
        "--model MIXTRAL --prompt hi --prompt-file x             | mutually exclusive",
    })
    void badInput_exitsWith2AndOneClearLine(String args, String message) {
        String resolved = args.replace("MIXTRAL", TestModels.dir(TestModels.MIXTRAL).toString());
        String[] argv = ("generate " + resolved.strip()).split("\\s+");
        CliRun run = CliRun.of(argv);
        assertThat(run.exitCode()).isEqualTo(2);
        assertThat(run.err()).contains(message).doesNotContain("\tat ");
    }

    /** Bytes that are no UTF-8: a stray continuation byte, a Latin-1 é, a sequence cut short at the file's end. */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"stray continuation byte, 68 69 80", "Latin-1 text, 63 61 66 e9", "truncated sequence, 68 69 e2 82"})
    void promptFileNotUtf8_exitsWith2NamingTheFile(String what, String hex) throws IOException {
        String[] bytes = hex.split(" ");
        byte[] content = new byte[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            content[i] = (byte) Integer.parseInt(bytes[i], 16);
        }
        Path f = Files.write(tmp.resolve("latin1.txt"), content);
        CliRun run = CliRun.of("generate", "--model", TestModels.dir(TestModels.MIXTRAL).toString(), "--prompt-file",
                f.toString());
        assertThat(run.exitCode()).isEqualTo(2);
        assertThat(run.err().strip()).isEqualTo("moemesh generate: --prompt-file " + f + ": not UTF-8 text");
    }

    /** A regular file whose read fails: no read permission (not for root, who reads anyway), or an I/O error. */
    static Stream<String> unreadableFiles() throws IOException {
        Stream.Builder<String> files = Stream.builder();
        if (!"root".equals(System.getProperty("user.name"))) {
            Path f = Files.createTempFile("moemesh-unreadable-", ".txt");
            f.toFile().deleteOnExit();
            Files.setPosixFilePermissions(f, java.util.Set.of());
            files.add(f.toString());
        }
        if (Files.isRegularFile(Path.of("/proc/self/mem"))) {
            files.add("/proc/self/mem"); // reading address 0 of this process: EIO
        }
        return files.build();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("unreadableFiles")
    void promptFileThatCannotBeRead_exitsWith2NamingTheFile(String file) {
        CliRun run = CliRun.of("generate", "--model", TestModels.dir(TestModels.MIXTRAL).toString(), "--prompt-file",
                file);
        assertThat(run.exitCode()).isEqualTo(2);
        assertThat(run.err().strip()).startsWith("moemesh generate: --prompt-file " + file + ": not readable")
                .doesNotContain("\n").doesNotContain("\tat ");
    }

    @Test
    void promptLongerThanContext_exitsWith2() throws IOException {
        Path f = tmp.resolve("long.txt");
        Files.writeString(f, "word ".repeat(600));
        CliRun run = CliRun.of("generate", "--model", TestModels.dir(TestModels.MIXTRAL).toString(), "--prompt-file",
                f.toString());
        assertThat(run.exitCode()).isEqualTo(2);
        assertThat(run.err()).contains("max_position_embeddings 512");
    }

    @Test
    void brokenCheckpoint_exitsWith2NamingTheFile() throws IOException {
        Path dir = tmp.resolve("broken");
        Files.createDirectories(dir);
        for (String f : new String[] {"config.json", "tokenizer.json"}) {
            Files.copy(TestModels.dir(TestModels.MIXTRAL).resolve(f), dir.resolve(f));
        }
        Files.write(dir.resolve("model.safetensors"), new byte[] {(byte) 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9});
        CliRun run = CliRun.of("generate", "--model", dir.toString(), "--prompt", "hi");
        assertThat(run.exitCode()).isEqualTo(2);
        assertThat(run.err()).contains("model.safetensors").contains("corrupt");
    }
}
