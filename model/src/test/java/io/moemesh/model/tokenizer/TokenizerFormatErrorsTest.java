package io.moemesh.model.tokenizer;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.ModelFormatException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Bad or unsupported tokenizer.json input fails with a message naming the file and the component. */
class TokenizerFormatErrorsTest {
    private static final String BPE = """
            {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}""";

    static String tokenizerJson(String normalizer, String preTokenizer, String model, String decoder) {
        return """
                {"version": "1.0", "added_tokens": [], "normalizer": %s, "pre_tokenizer": %s, "model": %s,
                 "decoder": %s}""".formatted(normalizer, preTokenizer, model, decoder);
    }

    @Test
    void load_failsNamingTheFile_whenTheFileIsMissing(@TempDir Path dir) {
        Path missing = dir.resolve("tokenizer.json");
        assertThatThrownBy(() -> Tokenizer.load(missing))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(missing.toString())
                .hasMessageContaining("not found");
    }

    @Test
    void load_failsNamingTheFile_whenTheJsonIsMalformed(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("tokenizer.json");
        Files.writeString(file, "{\"model\": {\"type\": \"BPE\",");
        assertThatThrownBy(() -> Tokenizer.load(file))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith(file + ": malformed JSON");
    }

    @Test
    void load_failsNamingTheFile_whenTheFileIsNotUtf8(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("tokenizer.json");
        Files.write(file, new byte[] {'{', (byte) 0xC3, '}'});
        assertThatThrownBy(() -> Tokenizer.load(file))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(file.toString());
    }

    @Test
    void parse_rejectsAnUnsupportedNormalizer_namingItsType() {
        String json = tokenizerJson("{\"type\": \"BertNormalizer\"}", "null", BPE, "null");
        assertThatThrownBy(() -> Tokenizer.parse(json, "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith("tokenizer.json: normalizer type \"BertNormalizer\" is not supported"
                        + " (supported: ");
    }

    @Test
    void parse_rejectsAnUnsupportedPreTokenizer_insideASequence_namingItsPath() {
        String json = tokenizerJson("null", """
                {"type": "Sequence", "pretokenizers": [{"type": "ByteLevel"}, {"type": "UnicodeScripts"}]}""",
                BPE, "null");
        assertThatThrownBy(() -> Tokenizer.parse(json, "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith("tokenizer.json: pre_tokenizer.pretokenizers[1] type \"UnicodeScripts\""
                        + " is not supported");
    }

    @Test
    void parse_rejectsAnUnsupportedDecoder_namingItsType() {
        String json = tokenizerJson("null", "null", BPE, "{\"type\": \"WordPiece\", \"prefix\": \"##\"}");
        assertThatThrownBy(() -> Tokenizer.parse(json, "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith("tokenizer.json: decoder type \"WordPiece\" is not supported");
    }

    @Test
    void parse_rejectsAModelOtherThanBpe_namingItsType() {
        String json = tokenizerJson("null", "null", "{\"type\": \"Unigram\", \"vocab\": []}", "null");
        assertThatThrownBy(() -> Tokenizer.parse(json, "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessage("tokenizer.json: model type \"Unigram\" is not supported (supported: BPE)");
    }

    @Test
    void parse_rejectsBpeDropout() {
        String json = tokenizerJson("null", "null", """
                {"type": "BPE", "dropout": 0.1, "vocab": {"a": 0}, "merges": []}""", "null");
        assertThatThrownBy(() -> Tokenizer.parse(json, "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith("tokenizer.json: model.dropout is not supported");
    }

    @Test
    void parse_rejectsAMergeOfTokensOutsideTheVocabulary() {
        String json = tokenizerJson("null", "null", """
                {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}""", "null");
        assertThatThrownBy(() -> Tokenizer.parse(json, "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessage("tokenizer.json: model.merges[0] uses \"ab\", which is not in model.vocab");
    }

    @Test
    void parse_rejectsARegexJavaCannotCompile_quotingIt() {
        String json = tokenizerJson("null", """
                {"type": "Split", "pattern": {"Regex": "(?<x"}, "behavior": "Isolated", "invert": false}""",
                BPE, "null");
        assertThatThrownBy(() -> Tokenizer.parse(json, "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith("tokenizer.json: pre_tokenizer.pattern: regex \"(?<x\" is not supported");
    }

    /**
     * metaspace.rs {@code Metaspace::deserialize}: {@code add_prefix_space: false} requires prepend_scheme "never"
     * (absent means "always"), for the pre-tokenizer and the decoder alike; true, or a matching false, loads.
     */
    @ParameterizedTest
    @CsvSource(delimiter = ';', value = {
        "pre_tokenizer; \"add_prefix_space\": false, \"prepend_scheme\": \"always\"; \"always\"",
        "pre_tokenizer; \"add_prefix_space\": false, \"prepend_scheme\": \"first\"; \"first\"",
        "pre_tokenizer; \"add_prefix_space\": false; \"always\" (the default when absent)",
        "decoder; \"add_prefix_space\": false, \"prepend_scheme\": \"first\"; \"first\""})
    void parse_rejectsAMetaspaceWhoseAddPrefixSpaceFalseContradictsItsPrependScheme(String where, String fields,
                                                                                    String scheme) {
        String metaspace = "{\"type\": \"Metaspace\", \"replacement\": \"\u2581\", " + fields + "}";
        String json = where.equals("decoder") ? tokenizerJson("null", "null", BPE, metaspace)
                : tokenizerJson("null", metaspace, BPE, "null");
        assertThatThrownBy(() -> Tokenizer.parse(json, "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith("tokenizer.json: " + where + ".add_prefix_space false does not match "
                        + "prepend_scheme " + scheme)
                .hasMessageContaining("add_prefix_space does not match declared prepend_scheme");
    }

    @ParameterizedTest
    @ValueSource(strings = {"\"add_prefix_space\": false, \"prepend_scheme\": \"never\"",
        "\"add_prefix_space\": true, \"prepend_scheme\": \"never\"", "\"add_prefix_space\": true"})
    void parse_acceptsAMetaspaceWhoseAddPrefixSpaceMatchesOrIsTrue(String fields) {
        String metaspace = "{\"type\": \"Metaspace\", \"replacement\": \"\u2581\", " + fields + "}";
        Tokenizer.parse(tokenizerJson("null", metaspace, BPE, metaspace), "tokenizer.json");
    }

    @Test
    void parse_rejectsAnUnknownSplitBehavior() {
        String json = tokenizerJson("null", """
                {"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways", "invert": false}""",
                BPE, "null");
        assertThatThrownBy(() -> Tokenizer.parse(json, "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith("tokenizer.json: pre_tokenizer.behavior \"Sideways\" is not supported");
    }

    @Test
    void parse_rejectsAMissingModel() {
        assertThatThrownBy(() -> Tokenizer.parse("{\"added_tokens\": []}", "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessage("tokenizer.json: model is missing");
    }

    @Test
    void parse_rejectsAnUnkTokenOutsideTheVocabulary() {
        String json = tokenizerJson("null", "null", """
                {"type": "BPE", "unk_token": "<unk>", "vocab": {"a": 0}, "merges": []}""", "null");
        assertThatThrownBy(() -> Tokenizer.parse(json, "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessage("tokenizer.json: model.unk_token \"<unk>\" is not in the vocabulary");
    }
}
