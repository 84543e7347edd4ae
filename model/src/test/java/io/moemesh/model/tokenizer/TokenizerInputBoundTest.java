package io.moemesh.model.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.golden.TestModels;
import java.nio.charset.StandardCharsets;
import java.text.Normalizer.Form;
import java.util.List;
import java.util.OptionalInt;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.Example;

/**
 * {@link Tokenizer#maxInputBytesPerToken()}: the bound B with {@code encode(text).length >= utf8Bytes(text) / B}
 * that lets the gateway refuse a prompt that cannot fit without tokenizing it. The normalizer factors are
 * checked on every code point; the bound itself on texts built to be short after normalization and long in bytes.
 */
class TokenizerInputBoundTest {
    private static final List<String> STYLES = List.of("bytelevel-style", "llama-style", "metaspace-style",
            "qwen-style");

    private static Tokenizer style(String s) {
        return TokenizerGoldenTest.tokenizer(s);
    }

    private static Tokenizer model(String name) {
        return Tokenizer.load(TestModels.dir(name).resolve("tokenizer.json"));
    }

    private static int utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8).length;
    }

    @Example
    void everyStyleAndTestModel_hasABound_andItIsTheLongestTokenTimesTheNormalizerFactor() {
        for (String s : STYLES) {
            assertThat(style(s).maxInputBytesPerToken()).as(s).isPresent();
        }
        // qwen-style normalizes with NFC (factor 3); the byte-level tiny models' longest token is 13 bytes.
        assertThat(style("qwen-style").maxInputBytesPerToken().getAsInt() % 3).isZero();
        assertThat(model(TestModels.MIXTRAL).maxInputBytesPerToken()).hasValue(13);
    }

    @Property(tries = 500)
    void encode_hasAtLeastUtf8BytesOverTheBound_tokens(@ForAll("shrinkable") String text) {
        for (String s : STYLES) {
            Tokenizer t = style(s);
            int bound = t.maxInputBytesPerToken().getAsInt();
            assertThat((long) t.encode(text).length * bound).as(s).isGreaterThanOrEqualTo(utf8(text));
        }
        Tokenizer tiny = model(TestModels.QWEN2_MOE);
        assertThat((long) tiny.encode(text).length * tiny.maxInputBytesPerToken().getAsInt())
                .isGreaterThanOrEqualTo(utf8(text));
    }

    /** Every code point: the factor each Unicode form and Lowercase claims is never exceeded. */
    @Example
    void normalizerFactors_holdForEveryCodePoint() {
        List<Normalizer> normalizers = List.of(new Normalizer.UnicodeForm(Form.NFC),
                new Normalizer.UnicodeForm(Form.NFD), new Normalizer.UnicodeForm(Form.NFKC),
                new Normalizer.UnicodeForm(Form.NFKD), new Normalizer.Lowercase());
        for (Normalizer n : normalizers) {
            for (int cp = 0; cp <= Character.MAX_CODE_POINT; cp++) {
                if (cp >= Character.MIN_SURROGATE && cp <= Character.MAX_SURROGATE) {
                    continue;
                }
                String in = Character.toString(cp);
                int out = utf8(n.normalize(in));
                if ((long) n.maxShrink() * out < utf8(in)) {
                    throw new AssertionError(n + " shrinks U+" + Integer.toHexString(cp) + " beyond its factor");
                }
            }
        }
    }

    @Property(tries = 300)
    void normalizerFactors_holdForSequencesThatCompose(@ForAll("shrinkable") String text) {
        for (Form f : Form.values()) {
            Normalizer n = new Normalizer.UnicodeForm(f);
            assertThat((long) n.maxShrink() * utf8(n.normalize(text))).as(f.name()).isGreaterThanOrEqualTo(utf8(text));
        }
    }

    @Example
    void replaceByALiteral_shrinksByTheRatioOfTheirLengths_replaceByRegexOrNothing_hasNoBound() {
        assertThat(new Normalizer.Replace(HfRegex.literal("abcde"), "x").maxShrink()).isEqualTo(5);
        assertThat(new Normalizer.Replace(HfRegex.literal(" "), "\u2581").maxShrink()).isEqualTo(1);
        assertThat(new Normalizer.Replace(HfRegex.literal("abc"), "").maxShrink()).isZero();
        assertThat(new Normalizer.Replace(HfRegex.compile(" +", "test"), " ").maxShrink()).isZero();
    }

    private static OptionalInt bound(String normalizer, String preTokenizer, String model, String added) {
        String json = """
                {"version": "1.0", "added_tokens": [%s], "normalizer": %s, "pre_tokenizer": %s, "model": %s,
                 "decoder": null}""".formatted(added, normalizer, preTokenizer, model);
        return Tokenizer.parse(json, "tokenizer.json").maxInputBytesPerToken();
    }

    private static final String WITH_UNK = """
            {"type": "BPE", "vocab": {"<unk>": 0, "a": 1, "b": 2, "ab": 3}, "merges": [["a", "b"]], "unk_token": "<unk>"}""";

    @Example
    void noBound_whenInputCanVanish() {
        assertThat(bound("{\"type\": \"Strip\", \"strip_left\": true, \"strip_right\": true}", "null", WITH_UNK, ""))
                .as("Strip").isEmpty();
        assertThat(bound("null", "{\"type\": \"WhitespaceSplit\"}", WITH_UNK, "")).as("WhitespaceSplit").isEmpty();
        assertThat(bound("null", "null", WITH_UNK.replace("\"unk_token\": \"<unk>\"", "\"unk_token\": \"<unk>\", "
                + "\"fuse_unk\": true"), "")).as("fuse_unk").isEmpty();
        assertThat(bound("null", "null", WITH_UNK.replace(", \"unk_token\": \"<unk>\"", ""), ""))
                .as("characters missing from the vocabulary are dropped").isEmpty();
        assertThat(bound("null", "null", WITH_UNK, """
                {"id": 4, "content": "<mask>", "single_word": false, "lstrip": true, "rstrip": false,
                 "normalized": false, "special": true}""")).as("lstrip").isEmpty();
    }

    @Example
    void unknownTokenPerCharacter_standsForUpTo4Bytes() {
        assertThat(bound("null", "null", WITH_UNK, "")).hasValue(5);
        assertThat(bound("null", "null", WITH_UNK.replace("\"<unk>\": 0", "\"<u>\": 0").replace("\"unk_token\": \"<unk>\"",
                "\"unk_token\": \"<u>\""), "")).hasValue(4);
    }

    /**
     * Text that normalization shortens the most: composing sequences (Hangul jamo, base letters with combining
     * marks), singletons (Kelvin and Ohm signs, Angstrom), compatibility forms (fullwidth and mathematical letters),
     * mixed with ASCII and white space.
     */
    @Provide
    Arbitrary<String> shrinkable() {
        Arbitrary<String> jamo = Arbitraries.of("\u1100\u1161\u11A8", "\u1112\u1175", "\uFFA1\uFFC2", "\u3131\u314F");
        Arbitrary<String> marks = Arbitraries.of("a\u0301", "e\u0308\u0304", "\u03B1\u0313\u0300\u0345",
                "\uD835\uDC00\u030A\u0301", "\u212B\u0341", "\u0CC6\u0CC2\u0CD5", "A\u030A");
        Arbitrary<String> singles = Arbitraries.of("\u212A", "\u2126", "\u212B", "\uFF21", "\uD835\uDC00", "\u037E",
                "\u1FEF", "\uFB01", "\u1E9E", "\u0130");
        Arbitrary<String> ascii = Arbitraries.strings().withCharRange(' ', '~').ofMaxLength(4);
        Arbitrary<String> space = Arbitraries.of(" ", "  ", "\n", "\t", "\u3000");
        return Arbitraries.frequencyOf(Tuple.of(3, jamo), Tuple.of(3, marks), Tuple.of(3, singles), Tuple.of(2, ascii),
                        Tuple.of(1, space))
                .list().ofMaxSize(40).map(parts -> String.join("", parts));
    }
}
