package io.moemesh.model.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Pre-tokenizers against the examples of HF's own documentation and tests. */
class PreTokenizerTest {

    private static List<String> texts(PreTokenizer p, String text) {
        List<PreTokenizer.Piece> out = new ArrayList<>();
        p.split(new PreTokenizer.Piece(text, true), out);
        return out.stream().map(PreTokenizer.Piece::text).toList();
    }

    /** The table of HF's SplitDelimiterBehavior documentation, splitting "the-final--countdown" on "-". */
    @ParameterizedTest
    @CsvSource(delimiter = ';', value = {
        "Removed; the|final|countdown",
        "Isolated; the|-|final|-|-|countdown",
        "MergedWithPrevious; the-|final-|-|countdown",
        "MergedWithNext; the|-final|-|-countdown",
        "Contiguous; the|-|final|--|countdown"})
    void split_followsHfDelimiterBehavior(String behavior, String expected) {
        PreTokenizer split = new PreTokenizer.Split(HfRegex.literal("-"), SplitBehavior.fromJson(behavior), false);
        assertThat(texts(split, "the-final--countdown")).containsExactly(expected.split("\\|"));
    }

    /**
     * Zero-width matches are match ranges too (tokenizers pattern.rs {@code find_matches} over onig's
     * {@code find_iter}, rust-onig 6.5 find.rs): "(?=b)" cuts "ab" before the b whatever the behavior; an empty
     * match where the previous match ended is skipped, so "a|(?=b)" on "ab" finds only "a", and MergedWithNext
     * then joins it with "b" (were the empty match kept, it would stand between them and keep "a" apart).
     */
    @ParameterizedTest
    @CsvSource(delimiter = ';', value = {
        "(?=b); Isolated; ab; a|b",
        "(?=b); Removed; ab; a|b",
        "(?=b); Contiguous; ab; a|b",
        "(?=b); MergedWithPrevious; abb; a|b|b",
        "(?=b); MergedWithNext; ab; a|b",
        "(?=a); Isolated; ab; ab",
        "a|(?=b); MergedWithNext; ab; ab",
        "a|(?=b); Isolated; aab; a|a|b"})
    void split_keepsZeroWidthMatchesAsBoundaries_likeOniguruma(String regex, String behavior, String text,
                                                               String expected) {
        PreTokenizer split = new PreTokenizer.Split(HfRegex.compile(regex, "test"), SplitBehavior.fromJson(behavior),
                false);
        assertThat(texts(split, text)).containsExactly(expected.split("\\|"));
    }

    @Test
    void split_withInvert_treatsTheNonMatchesAsDelimiters() {
        // HF's Whitespace pre-tokenizer: keep \w+|[^\w\s]+, remove what is between.
        PreTokenizer whitespace = new PreTokenizer.Split(ComponentParser.WHITESPACE, SplitBehavior.REMOVED, true);
        assertThat(texts(whitespace, "Hey friend!   How are you?!?"))
                .containsExactly("Hey", "friend", "!", "How", "are", "you", "?!?");
    }

    @Test
    void metaspaceFirst_prependsOnlyToThePieceAtTheStartOfTheInput() {
        // HF metaspace.rs test non_legacy_meta_space: " Hey <s>how <s>are <s> you", split on (<s>) first.
        PreTokenizer p = new PreTokenizer.Sequence(List.of(
                new PreTokenizer.Split(HfRegex.literal("<s>"), SplitBehavior.ISOLATED, false),
                new PreTokenizer.Metaspace("\u2581", PreTokenizer.PrependScheme.FIRST, false)));
        assertThat(texts(p, " Hey <s>how <s>are <s> you"))
                .containsExactly("▁Hey▁", "<s>", "how▁", "<s>", "are▁", "<s>", "▁you");
        assertThat(texts(p, "Hey my friend <s>how▁are you"))
                .containsExactly("▁Hey▁my▁friend▁", "<s>", "how▁are▁you");
    }

    @Test
    void metaspaceAlwaysWithSplit_cutsBeforeEveryReplacement() {
        PreTokenizer p = new PreTokenizer.Metaspace("\u2581", PreTokenizer.PrependScheme.ALWAYS, true);
        assertThat(texts(p, "Hey   friend!")).containsExactly("▁Hey", "▁", "▁", "▁friend!");
    }

    @Test
    void byteLevelRegex_treatsUnicodeWhiteSpaceAsWhitespace_likeOniguruma() {
        // With Java's ASCII \s, U+2003 would be "punctuation" and the two would stay together.
        PreTokenizer p = new PreTokenizer.ByteLevel(false, true);
        assertThat(texts(p, "a\u2003\u2003b c\u00A0d")).containsExactly(
                ByteLevelAlphabet.encode("a"), ByteLevelAlphabet.encode("\u2003"),
                ByteLevelAlphabet.encode("\u2003"), ByteLevelAlphabet.encode("b"), "Ġc",
                ByteLevelAlphabet.encode("\u00A0"), "d");
    }

    @Test
    void byteLevelRegex_splitsContractionsAndKeepsTheSpaceBeforeWords() {
        PreTokenizer p = new PreTokenizer.ByteLevel(false, true);
        assertThat(texts(p, "I'm  here")).containsExactly("I", "'m", "Ġ", "Ġhere");
    }

    @Test
    void byteLevelWithPrefixSpace_prependsASpaceToEveryPiece() {
        PreTokenizer p = new PreTokenizer.ByteLevel(true, false);
        assertThat(texts(p, "hi")).containsExactly("Ġhi");
        assertThat(texts(p, " hi")).containsExactly("Ġhi");
    }

    @Test
    void byteLevelAlphabet_spellsEveryByteWithOneVisibleCharacter() {
        assertThat(ByteLevelAlphabet.encode(" \n\t")).isEqualTo("ĠĊĉ");
        assertThat(ByteLevelAlphabet.encode("é")).isEqualTo("Ã©");
    }
}
