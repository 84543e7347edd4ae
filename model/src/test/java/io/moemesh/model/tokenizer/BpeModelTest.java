package io.moemesh.model.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** BPE details that the golden files do not reach: unknown characters, fusing, byte fallback, options. */
class BpeModelTest {

    private static Tokenizer bpe(String modelOptions) {
        String json = TokenizerFormatErrorsTest.tokenizerJson("null", "null", """
                {"type": "BPE", "vocab": {"<unk>": 0, "a": 1, "b": 2, "ab": 3, "<0x78>": 4, "abab": 5, "c": 6,
                 "##b": 7, "a##b": 8},
                 "merges": [["a", "b"], ["ab", "ab"]] %s}""".formatted(modelOptions), "null");
        return Tokenizer.parse(json, "test");
    }

    @Test
    void unknownCharacters_becomeOneUnkEach_withoutFuseUnk() {
        assertThat(bpe(", \"unk_token\": \"<unk>\"").encode("abyzab")).containsExactly(3, 0, 0, 3);
    }

    @Test
    void unknownCharacters_becomeOneUnkPerRun_withFuseUnk() {
        assertThat(bpe(", \"unk_token\": \"<unk>\", \"fuse_unk\": true").encode("abyzab")).containsExactly(3, 0, 3);
    }

    @Test
    void unknownCharacters_areDropped_withoutUnkToken_soTheirNeighboursCanMerge() {
        assertThat(bpe("").encode("abyzab")).containsExactly(5);
    }

    @Test
    void byteFallback_spellsAMissingCharacterWithItsByteTokens_beforeFallingBackToUnk() {
        Tokenizer t = bpe(", \"unk_token\": \"<unk>\", \"byte_fallback\": true");
        assertThat(t.encode("x")).containsExactly(4);
        assertThat(t.encode("y")).containsExactly(0);
    }

    @Test
    void merges_applyByRank_untilNoneIsLeft() {
        assertThat(bpe("").encode("ababab")).containsExactly(5, 3);
        assertThat(bpe("").encode("abc")).containsExactly(3, 6);
    }

    @Test
    void ignoreMerges_takesAWholeWordFromTheVocabulary() {
        String json = TokenizerFormatErrorsTest.tokenizerJson("null", "null", """
                {"type": "BPE", "ignore_merges": true, "vocab": {"a": 0, "b": 1, "ab": 2, "abb": 3},
                 "merges": []}""", "null");
        Tokenizer t = Tokenizer.parse(json, "test");
        assertThat(t.encode("abb")).containsExactly(3);
        assertThat(t.encode("ab")).containsExactly(2);
        assertThat(t.encode("ba")).containsExactly(1, 0);
    }

    @Test
    void continuingSubwordPrefix_marksNonInitialCharacters_andMergesDropIt() {
        String json = TokenizerFormatErrorsTest.tokenizerJson("null", "null", """
                {"type": "BPE", "continuing_subword_prefix": "##",
                 "vocab": {"a": 0, "##b": 1, "##a": 2, "ab": 3}, "merges": [["a", "##b"]]}""", "null");
        assertThat(Tokenizer.parse(json, "test").encode("aba")).containsExactly(3, 2);
    }

    @Test
    void legacyMergeStrings_areReadLikePairs() {
        String json = TokenizerFormatErrorsTest.tokenizerJson("null", "null", """
                {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}""", "null");
        assertThat(Tokenizer.parse(json, "test").encode("ab")).containsExactly(2);
    }

    @Test
    void decode_withoutDecoder_joinsTokensWithSpaces_andIgnoresUnknownIds() {
        Tokenizer t = bpe("");
        assertThat(t.decode(new int[] {3, 99, 6, -1}, true)).isEqualTo("ab c");
    }
}
