package io.moemesh.router.trace;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Objects;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class TraceReaderTest {

    @TempDir
    Path dir;

    static Path fixture(String name) {
        try {
            return Path.of(Objects.requireNonNull(TraceReaderTest.class.getResource("/traces/" + name)).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    @Test
    void mixtralJsonl_tokensInOrderOfFirstAppearance_layersAsInFile_noTokenIds() {
        RouteTrace trace = TraceReader.read(fixture("mixtral-tiny.jsonl"));

        assertThat(trace.firstLayer()).isZero();
        assertThat(trace.layers()).isEqualTo(3);
        assertThat(trace.topK()).isEqualTo(2);
        assertThat(trace.experts()).isEqualTo(8);
        assertThat(trace.tokens()).extracting(TokenRoute::key).containsExactly("0:0", "0:1", "1:0", "0:2");
        assertThat(trace.tokens()).extracting(TokenRoute::tokenId).containsOnly(-1);
        TokenRoute first = trace.tokens().getFirst();
        assertThat(first.experts()[1]).containsExactly(4, 0);
        assertThat(first.weights()[1]).containsExactly(0.55f, 0.45f);
        TokenRoute partial = trace.tokens().get(2);
        assertThat(partial.has(0)).isTrue();
        assertThat(partial.has(1)).isFalse();
        assertThat(trace.fullPaths()).extracting(TokenRoute::key).containsExactly("0:0", "0:1");
        assertThat(TraceReader.detect(fixture("mixtral-tiny.jsonl"))).isEqualTo(TraceFormat.MIXTRAL_JSONL);
    }

    @Test
    void flamePrefillCsv_keyIsTokenIdx_layersNumberedFromTheFile_expertsRoundedToPowerOfTwo() {
        RouteTrace trace = TraceReader.read(fixture("flame-prefill-tiny.csv"));

        assertThat(trace.firstLayer()).isEqualTo(2);
        assertThat(trace.layerNumber(trace.layers() - 1)).isEqualTo(4);
        assertThat(trace.topK()).isEqualTo(3);
        assertThat(trace.experts()).isEqualTo(64); // highest id 60 → 61 → 64
        assertThat(trace.tokens()).extracting(TokenRoute::key).containsExactly("0", "1", "2");
        assertThat(trace.tokens()).extracting(TokenRoute::tokenId).containsExactly(1512, 77, 1512);
        assertThat(trace.tokens().getFirst().experts()[0]).containsExactly(34, 28, 21);
        assertThat(trace.tokens().getFirst().weights()[0][0]).isEqualTo(0.099801f);
        assertThat(trace.requireFullPaths()).hasSize(3);
        assertThat(TraceReader.detect(fixture("flame-prefill-tiny.csv"))).isEqualTo(TraceFormat.FLAME_PREFILL_CSV);
    }

    @Test
    void flameDecodeCsv_keyIsSeqColonPos() {
        RouteTrace trace = TraceReader.read(fixture("flame-decode-tiny.csv"));

        assertThat(trace.tokens()).extracting(TokenRoute::key).containsExactly("0:0", "0:1", "1:0");
        assertThat(trace.tokens()).extracting(TokenRoute::tokenId).containsExactly(1512, 90, 1512);
        assertThat(trace.firstLayer()).isEqualTo(2);
        assertThat(trace.layers()).isEqualTo(2);
        assertThat(trace.topK()).isEqualTo(2);
        assertThat(TraceReader.detect(fixture("flame-decode-tiny.csv"))).isEqualTo(TraceFormat.FLAME_DECODE_CSV);
    }

    @Test
    void knownExpertCount_isTheTracesCount_andBoundsTheIds() throws IOException {
        assertThat(TraceReader.read(fixture("flame-prefill-tiny.csv"), 100).experts()).isEqualTo(100);

        assertThatThrownBy(() -> TraceReader.read(fixture("flame-prefill-tiny.csv"), 60))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("flame-prefill-tiny.csv:3: e0 = 60 is out of range 0..59");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '`', textBlock = """
            bad JSON                | {"problem_id": 0,                                                                   | t.jsonl:2: not a JSON object
            JSON not an object      | [1, 2]                                                                              | t.jsonl:1: unknown header
            missing field           | {"problem_id": 0, "token_idx": 1, "experts": [1, 2], "gating_probs": [0.5, 0.4]}    | t.jsonl:2: missing field 'layer'
            field not an integer    | {"problem_id": "a", "token_idx": 1, "layer": 0, "experts": [1, 2], "gating_probs": [0.5, 0.4]} | t.jsonl:2: field 'problem_id' is not an integer
            expert id negative      | {"problem_id": 0, "token_idx": 1, "layer": 0, "experts": [1, -2], "gating_probs": [0.5, 0.4]} | t.jsonl:2: experts[1] = -2 is out of range
            expert repeated in row  | {"problem_id": 0, "token_idx": 1, "layer": 0, "experts": [3, 3], "gating_probs": [0.5, 0.4]} | t.jsonl:2: expert 3 repeated in one row
            weights length differs  | {"problem_id": 0, "token_idx": 1, "layer": 0, "experts": [1, 2], "gating_probs": [0.5]} | t.jsonl:2: experts has 2 entries but gating_probs 1
            top-k changes           | {"problem_id": 0, "token_idx": 1, "layer": 0, "experts": [1, 2, 3], "gating_probs": [0.5, 0.4, 0.1]} | t.jsonl:2: 3 experts, but line 1 has 2
            duplicate token layer   | {"problem_id": 0, "token_idx": 0, "layer": 0, "experts": [4, 5], "gating_probs": [0.5, 0.4]} | t.jsonl:2: duplicate row for token 0:0 layer 0 (first on line 1)
            weight not finite       | {"problem_id": 0, "token_idx": 1, "layer": 0, "experts": [1, 2], "gating_probs": [0.5, -1]} | t.jsonl:2: gating_probs[1] = -1.0 is not a finite non-negative gate weight
            """)
    void malformedJsonl_refused_namingFileAndLine(String rule, String secondLine, String message) throws IOException {
        String first = rule.equals("JSON not an object") ? ""
                : "{\"problem_id\": 0, \"token_idx\": 0, \"layer\": 0, \"experts\": [1, 2], \"gating_probs\": [0.6, 0.4]}\n";
        Path file = dir.resolve("t.jsonl");
        Files.writeString(file, first + secondLine + "\n");

        assertThatThrownBy(() -> TraceReader.read(file))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith(dir.toString())
                .hasMessageContaining(message);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '`', textBlock = """
            unknown header          | `token,layer,e0,w0`                | `0,2,1,0.5`                 | t.csv:1: unknown header 'token,layer,e0,w0'
            column count            | `token_idx,token_id,layer,e0,e1,w0,w1` | `0,5,2,1,2,0.5`          | t.csv:2: 6 columns, the header has 7
            not an integer          | `token_idx,token_id,layer,e0,e1,w0,w1` | `0,5,2,x,2,0.5,0.4`      | t.csv:2: column 'e0' is not an integer: 'x'
            not a number            | `token_idx,token_id,layer,e0,e1,w0,w1` | `0,5,2,1,2,0.5,zz`       | t.csv:2: column 'w1' is not a number: 'zz'
            expert repeated         | `token_idx,token_id,layer,e0,e1,w0,w1` | `0,5,2,1,1,0.5,0.4`      | t.csv:2: expert 1 repeated in one row
            negative layer          | `token_idx,token_id,layer,e0,e1,w0,w1` | `0,5,-1,1,2,0.5,0.4`     | t.csv:2: layer is negative: -1
            negative token id       | `token_idx,token_id,layer,e0,e1,w0,w1` | `0,-5,2,1,2,0.5,0.4`     | t.csv:2: column 'token_id' is negative: -5
            """)
    void malformedCsv_refused_namingFileAndLine(String rule, String header, String row, String message)
            throws IOException {
        Path file = dir.resolve("t.csv");
        Files.writeString(file, header + "\n" + row + "\n");

        assertThatThrownBy(() -> TraceReader.read(file))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(message);
    }

    @Test
    void duplicateTokenLayerRow_refused_namingBothLines() throws IOException {
        Path file = dir.resolve("dup.csv");
        Files.writeString(file, """
                token_idx,token_id,layer,e0,e1,w0,w1
                0,5,2,1,2,0.5,0.4
                0,5,3,1,2,0.5,0.4
                0,5,2,3,4,0.5,0.4
                """);

        assertThatThrownBy(() -> TraceReader.read(file))
                .hasMessageContaining("dup.csv:4: duplicate row for token 0 layer 2 (first on line 2)");
    }

    @Test
    void oneTokenWithTwoTokenIds_refused() throws IOException {
        Path file = dir.resolve("ids.csv");
        Files.writeString(file, "token_idx,token_id,layer,e0,w0\n0,5,2,1,0.5\n0,6,3,1,0.5\n");

        assertThatThrownBy(() -> TraceReader.read(file))
                .hasMessageContaining("ids.csv:3: token 0 has token_id 6 here but 5 on line 2");
    }

    @Test
    void gapInLayerNumbers_refused() throws IOException {
        Path file = dir.resolve("gap.csv");
        Files.writeString(file, "token_idx,token_id,layer,e0,w0\n0,5,2,1,0.5\n0,5,4,1,0.5\n");

        assertThatThrownBy(() -> TraceReader.read(file))
                .hasMessageContaining("gap.csv: no row for layer 3 (the file has layers 2..4");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '`', textBlock = """
            empty file        | ``                                       | empty file
            only blank lines  | `\n  \n`                                 | empty file
            header only       | `token_idx,token_id,layer,e0,w0`         | no rows
            """)
    void emptyTrace_refused(String rule, String content, String message) throws IOException {
        Path file = dir.resolve("empty.csv");
        Files.writeString(file, content.replace("\\n", "\n"));

        assertThatThrownBy(() -> TraceReader.read(file))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage(file + ": " + (message.equals("no rows") ? "no rows (an empty trace)"
                        : "empty file (no header and no rows)"));
    }

    @Test
    void missingFile_refused_namingIt() {
        Path missing = dir.resolve("nope.csv");

        assertThatThrownBy(() -> TraceReader.read(missing))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage(missing + ": no such file");
    }

    @Test
    void traceWithNoFullPath_refusedWhenPathsAreNeeded() throws IOException {
        Path file = dir.resolve("partial.jsonl");
        Files.writeString(file, """
                {"problem_id": 0, "token_idx": 0, "layer": 0, "experts": [1, 2], "gating_probs": [0.6, 0.4]}
                {"problem_id": 0, "token_idx": 1, "layer": 1, "experts": [1, 2], "gating_probs": [0.6, 0.4]}
                """);
        RouteTrace trace = TraceReader.read(file);

        assertThat(trace.tokens()).hasSize(2);
        assertThatThrownBy(trace::requireFullPaths)
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage(file + ": no token has routes at all 2 layers (0..1); a full path is needed");
    }
}
