package io.moemesh.model.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
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

    /** A vocabulary of 4 entries, "!" at id 3, with the given added_tokens (content, id, special pairs). */
    private static String withAddedTokens(String... contentAndId) {
        return withVocabAndAddedTokens("{\"a\": 0, \"b\": 1, \"ab\": 2, \"!\": 3}", contentAndId);
    }

    /** The vocabulary (a JSON object holding "a", "b" and "ab") with the given added_tokens (content, id pairs). */
    private static String withVocabAndAddedTokens(String vocab, String... contentAndId) {
        StringBuilder added = new StringBuilder();
        for (int i = 0; i < contentAndId.length; i += 2) {
            added.append(i == 0 ? "" : ", ").append("""
                    {"id": %s, "content": "%s", "single_word": false, "lstrip": false, "rstrip": false,
                     "normalized": false, "special": true}""".formatted(contentAndId[i + 1], contentAndId[i]));
        }
        return """
                {"version": "1.0", "added_tokens": [%s], "normalizer": null, "pre_tokenizer": null,
                 "model": {"type": "BPE", "vocab": %s, "merges": [["a", "b"]]},
                 "decoder": null}""".formatted(added, vocab);
    }

    /**
     * The tokenizers library ignores a declared added-token id (it only warns): checked with tokenizers 0.23.2 on a
     * 512-entry vocabulary, "<sep>" declared at "!"'s id 3 got 512, so "!" stayed "!" and "<sep>" was 512.
     */
    @Test
    void parse_rejectsAnAddedTokenDeclaredAtTheIdOfAnotherVocabularyToken_namingTokenIdAndThatToken() {
        assertThatThrownBy(() -> Tokenizer.parse(withAddedTokens("<sep>", "3"), "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith("tokenizer.json: added_tokens[0].id \"<sep>\" has id 3, which is \"!\" in"
                        + " model.vocab, but the tokenizers library ignores a declared id and gives it 4 (the next"
                        + " new id: model.vocab's size 4 plus the added tokens before it that got a new id)");
    }

    /** tokenizers 0.23.2: "el", in the vocabulary at 459 and declared at 3, encoded as 459. */
    @Test
    void parse_rejectsAnAddedTokenThatTheVocabularyHasAtAnotherId() {
        assertThatThrownBy(() -> Tokenizer.parse(withAddedTokens("ab", "5"), "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith("tokenizer.json: added_tokens[0].id \"ab\" has id 5 but the tokenizers"
                        + " library ignores a declared id and gives it 2 (its id in model.vocab)");
    }

    /** tokenizers 0.23.2: "<extra>" declared at 600 after a 512-entry vocabulary encoded as 512. */
    @Test
    void parse_rejectsAnAddedTokenDeclaredPastAGapAfterTheVocabulary() {
        assertThatThrownBy(() -> Tokenizer.parse(withAddedTokens("<s>", "4", "<extra>", "600"), "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith("tokenizer.json: added_tokens[1].id \"<extra>\" has id 600 but the"
                        + " tokenizers library ignores a declared id and gives it 5 (the next new id");
    }

    /**
     * tokenizers 0.23.1 (the rule since 0.22.2): a token new to the vocabulary gets model.vocab's size (4 here), not
     * the largest id + 1 (8), even after an added token that keeps its vocabulary id 7 past that size.
     */
    @Test
    void parse_addedTokenAfterAVocabularyGap_getsTheVocabularySizeNotTheLargestIdPlusOne() {
        String vocab = "{\"a\": 0, \"b\": 1, \"ab\": 2, \"<s>\": 7}";
        Tokenizer t = Tokenizer.parse(withVocabAndAddedTokens(vocab, "<s>", "7", "<x>", "4", "<y>", "5"),
                "tokenizer.json");
        assertThat(t.encode("ab<x><s><y>")).containsExactly(2, 4, 7, 5);
        assertThatThrownBy(() -> Tokenizer.parse(withVocabAndAddedTokens(vocab, "<s>", "7", "<x>", "8"),
                "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith("tokenizer.json: added_tokens[1].id \"<x>\" has id 8 but the tokenizers"
                        + " library ignores a declared id and gives it 4 (the next new id: model.vocab's size 4");
    }

    /**
     * HF's add_tokens keeps one token per id (added_tokens_map_r.insert): "<w>" gets the next new id 7, "<s>"'s id
     * in model.vocab, and replaces "<s>", which HF then no longer matches in text.
     */
    @Test
    void parse_rejectsANewAddedTokenGivenTheIdOfAnEarlierAddedToken_namingBothTokensAndTheId() {
        String vocab = "{\"a\": 0, \"b\": 1, \"ab\": 2, \"<s>\": 7}";
        assertThatThrownBy(() -> Tokenizer.parse(withVocabAndAddedTokens(vocab, "<s>", "7", "<x>", "4", "<y>", "5",
                "<z>", "6", "<w>", "7"), "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith("tokenizer.json: added_tokens[4].id \"<w>\" gets id 7 (the next new id:"
                        + " model.vocab's size 4 plus the added tokens before it that got a new id), which is already"
                        + " \"<s>\"'s (added_tokens[0]): the tokenizers library keeps one token per id");
    }

    /** A new token's id 5 is "!"'s in a model.vocab with a gap: HF would decode "!" as "<y>". */
    @Test
    void parse_rejectsANewAddedTokenGivenTheIdOfAnotherVocabularyToken_namingBothTokensAndTheId() {
        String vocab = "{\"a\": 0, \"b\": 1, \"ab\": 2, \"!\": 5}";
        assertThatThrownBy(() -> Tokenizer.parse(withVocabAndAddedTokens(vocab, "<x>", "4", "<y>", "5"),
                "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith("tokenizer.json: added_tokens[1].id \"<y>\" gets id 5 (the next new id:"
                        + " model.vocab's size 4 plus the added tokens before it that got a new id), which is already"
                        + " \"!\"'s (model.vocab)");
    }

    /** HF ignores an empty token; ours would name id 4 "" for decoding and lose "<s>". */
    @Test
    void parse_rejectsAnEmptyAddedTokenDeclaredAtTheIdOfAnEarlierAddedToken() {
        assertThatThrownBy(() -> Tokenizer.parse(withAddedTokens("<s>", "4", "", "4"), "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith("tokenizer.json: added_tokens[1].id \"\" has id 4, which is already"
                        + " \"<s>\"'s (added_tokens[0]): the tokenizers library ignores an empty added token");
    }

    /** tokenizers 0.23.2: a second "<s>" declared at "!"'s id 3 left "!" alone; "<s>" kept its first id. */
    @Test
    void parse_rejectsTheSameAddedTokenDeclaredAgainAtAnotherId() {
        assertThatThrownBy(() -> Tokenizer.parse(withAddedTokens("<s>", "4", "<s>", "5"), "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith("tokenizer.json: added_tokens[1].id \"<s>\" has id 5 but the tokenizers"
                        + " library ignores a declared id and gives it 4 (the id of added_tokens[0], which has the"
                        + " same content)");
    }

    @Test
    void parse_rejectsAnEmptyAddedTokenDeclaredAtTheIdOfAVocabularyToken() {
        assertThatThrownBy(() -> Tokenizer.parse(withAddedTokens("", "3"), "tokenizer.json"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith("tokenizer.json: added_tokens[0].id \"\" has id 3, which is \"!\" in"
                        + " model.vocab: the tokenizers library ignores an empty added token");
    }

    /** Ids and text as tokenizers 0.23.2 gives them for the same file (no decoder: tokens joined by spaces). */
    @Test
    void parse_acceptsAddedTokensDeclaredAtTheIdsTheTokenizersLibraryGives() {
        Tokenizer t = Tokenizer.parse(withAddedTokens("!", "3", "<s>", "4", "</s>", "5", "<s>", "4", "", "9"),
                "tokenizer.json");
        assertThat(t.encode("ab<s>!</s>")).containsExactly(2, 4, 3, 5);
        assertThat(t.decode(new int[] {2, 4, 3, 5}, false)).isEqualTo("ab <s> ! </s>");
    }
}
