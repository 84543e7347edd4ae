package io.moemesh.model.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import java.text.Normalizer.Form;
import java.util.List;
import java.util.stream.IntStream;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;

/**
 * Round trips that hold in the reference semantics (checked against HF's rules, not assumed): byte-level
 * tokenizers lose nothing; qwen-style loses only what NFC changes; llama-style restores the text exactly because
 * its Strip decoder removes just the "▁" its Prepend normalizer added; metaspace-style ("first" scheme) does not
 * prepend to text that already starts with a space, so the decoder's Strip eats that space.
 */
class TokenizerRoundTripPropertyTest {
    private static final List<String> ADDED = List.of("<s>", "</s>", "<unk>", "<|endoftext|>", "<|im_start|>",
            "<|im_end|>");

    private static Tokenizer tokenizer(String style) {
        return TokenizerGoldenTest.tokenizer(style);
    }

    @Property(tries = 300)
    void bytelevelStyle_decodeOfEncode_returnsTheText(@ForAll("text") String s) {
        Tokenizer t = tokenizer("bytelevel-style");
        assertThat(t.decode(t.encode(s), true)).isEqualTo(s);
    }

    @Property(tries = 300)
    void qwenStyle_decodeOfEncode_returnsTheNfcNormalizedText(@ForAll("text") String s) {
        Tokenizer t = tokenizer("qwen-style");
        assertThat(t.decode(t.encode(s), true)).isEqualTo(java.text.Normalizer.normalize(s, Form.NFC));
    }

    @Property(tries = 300)
    void llamaStyle_decodeOfEncode_returnsTheText_whenItHasNoMetaspaceCharacter(@ForAll("text") String s) {
        Tokenizer t = tokenizer("llama-style");
        assertThat(t.decode(t.encode(s), true)).isEqualTo(s);
    }

    @Property(tries = 300)
    void metaspaceStyle_decodeOfEncode_dropsOnlyALeadingSpace(@ForAll("text") String s) {
        Tokenizer t = tokenizer("metaspace-style");
        String expected = s.startsWith(" ") ? s.substring(1) : s;
        assertThat(t.decode(t.encode(s), true)).isEqualTo(expected);
    }

    @Property(tries = 200)
    void addedTokens_cutTheInputIntoIndependentlyEncodedSegments(@ForAll("text") String a,
                                                                 @ForAll("text") String b) {
        // Metaspace's "first" scheme is the one component that looks at a segment's position, so it is left out.
        for (String style : List.of("llama-style", "qwen-style", "bytelevel-style")) {
            Tokenizer t = tokenizer(style);
            String special = t.token(t.specialIds().iterator().next());
            int[] expected = IntStream.concat(IntStream.concat(IntStream.of(t.encode(a)),
                    IntStream.of(t.tokenId(special).orElseThrow())), IntStream.of(t.encode(b))).toArray();
            assertThat(t.encode(a + special + b)).as(style).containsExactly(expected);
        }
    }

    @Property(tries = 100)
    void encode_yieldsOnlyIdsInsideTheVocabulary(@ForAll("text") String s) {
        for (String style : GoldenData.STYLES) {
            Tokenizer t = tokenizer(style);
            assertThat(IntStream.of(t.encode(s)).boxed().toList())
                    .allSatisfy(id -> assertThat(t.findToken(id)).isPresent());
        }
    }

    /**
     * Valid Unicode (no lone surrogates) weighted towards what tokenizers find hard: Unicode white space, combining
     * marks, astral characters. Texts holding added-token content or "▁" are left out.
     */
    @Provide
    Arbitrary<String> text() {
        Arbitrary<Integer> ascii = Arbitraries.integers().between(0x20, 0x7E);
        Arbitrary<Integer> space = Arbitraries.of(0x20, 0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C, 0x85, 0xA0, 0x1680,
                0x2003, 0x2028, 0x202F, 0x3000, 0x200B, 0x1C);
        Arbitrary<Integer> tricky = Arbitraries.of(0xE9, 0x65, 0x301, 0x3B1, 0x65E5, 0x1F642, 0x1F468, 0x200D,
                0xDF, 0x130, 0x3A3, 0xFB01, 0xAC00, 0x1100, 0x1161, 0x0, 0x7F, 0xFFFD, 0x10FFFF, (int) '<', (int) '>',
                (int) '|', (int) '\'');
        Arbitrary<Integer> any = Arbitraries.integers().between(0, 0x10FFFF)
                .filter(cp -> cp < 0xD800 || cp > 0xDFFF);
        return Arbitraries.frequencyOf(Tuple.of(6, ascii), Tuple.of(3, space), Tuple.of(3, tricky),
                        Tuple.of(2, any))
                .list().ofMaxSize(30)
                .map(cps -> new String(cps.stream().mapToInt(Integer::intValue).toArray(), 0, cps.size()))
                .filter(s -> ADDED.stream().noneMatch(s::contains) && !s.contains("\u2581"));
    }
}
