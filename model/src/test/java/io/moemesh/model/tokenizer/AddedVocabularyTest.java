package io.moemesh.model.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.junit.jupiter.api.Test;

/** Added-token extraction against HF added_vocabulary.rs tests (Lowercase normalizer, ids as there). */
class AddedVocabularyTest {

    private static AddedToken token(int id, String content, boolean special) {
        return new AddedToken(id, content, false, false, false, !special, special);
    }

    private static List<String> shown(AddedVocabulary v, String text) {
        return v.extract(text).stream()
                .map(s -> s.isAddedToken() ? s.text() + "=" + s.tokenId() : s.text())
                .toList();
    }

    @Test
    void extract_honorsLstripRstripSingleWordAndNormalized() {
        AddedVocabulary v = new AddedVocabulary(List.of(
                new AddedToken(0, "my", false, true, true, true, false),
                token(1, "name", false),
                new AddedToken(2, "ony", true, false, false, true, false),
                token(3, "[CLS]", true),
                token(4, "[SEP]", true)), new Normalizer.Lowercase());
        assertThat(shown(v, "[CLS] My name is Anthony [SEP]"))
                .containsExactly("[CLS]=3", " my =0", "name=1", " is anthony ", "[SEP]=4");
    }

    @Test
    void extract_singleWord_matchesOnlyOutsideWords() {
        AddedVocabulary v = new AddedVocabulary(List.of(new AddedToken(0, "<mask>", true, false, false, true,
                false)), new Normalizer.Lowercase());
        assertThat(shown(v, "<mask> My name <mask> A<mask> <mask>ony <mask>"))
                .containsExactly("<mask>=0", " my name ", "<mask>=0", " a<mask> <mask>ony ", "<mask>=0");
        // Punctuation is not a word character, a combining mark is.
        assertThat(shown(v, "<mask>, <mask>- ◌̰<mask>"))
                .containsExactly("<mask>=0", ", ", "<mask>=0", "- ◌̰<mask>");
    }

    @Test
    void extract_lstripAndRstrip_swallowUnicodeWhiteSpace_withoutOverlappingThePreviousMatch() {
        AddedVocabulary v = new AddedVocabulary(List.of(new AddedToken(0, "<mask>", true, true, true, true,
                false)), new Normalizer.Lowercase());
        assertThat(shown(v, "Hi <mask> there\t<mask>\t<mask>\u2000"))
                .containsExactly("hi", " <mask> =0", "there", "\t<mask>\t=0", "<mask>\u2000=0");
    }

    @Test
    void extract_prefersTheLongestTokenAtTheLeftmostPosition() {
        AddedVocabulary v = new AddedVocabulary(List.of(token(0, "<a>", true), token(1, "<a><b>", true),
                token(2, "b>", true)), null);
        assertThat(shown(v, "x<a><b>y<a>b>")).containsExactly("x", "<a><b>=1", "y", "<a>=0", "b>=2");
    }

    @Test
    void extract_normalizesEachPieceBetweenAddedTokensSeparately() {
        AddedVocabulary v = new AddedVocabulary(List.of(token(1, "<s>", true)), new Normalizer.Prepend("▁"));
        assertThat(shown(v, "a<s>b<s>")).containsExactly("▁a", "<s>=1", "▁b", "<s>=1");
        assertThat(v.extract("a<s>b")).extracting(AddedVocabulary.Segment::atInputStart)
                .containsExactly(true, false, false);
    }
}
