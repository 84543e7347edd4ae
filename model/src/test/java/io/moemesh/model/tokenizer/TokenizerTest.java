package io.moemesh.model.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assumptions.assumeThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The vocabulary queries, and encoding speed on prompt-sized input. */
class TokenizerTest {

    @Test
    void vocabularyQueries_coverModelAndAddedTokens() {
        Tokenizer t = TokenizerGoldenTest.tokenizer("qwen-style");
        assertThat(t.vocabSize()).isEqualTo(700);
        assertThat(t.specialIds()).containsExactly(0, 1, 2);
        assertThat(t.isSpecial(1)).isTrue();
        assertThat(t.isSpecial(3)).isFalse();
        assertThat(t.token(1)).isEqualTo("<|im_start|>");
        assertThat(t.tokenId("<|im_end|>")).hasValue(2);
        assertThat(t.tokenId("Ġt")).isPresent();
        assertThat(t.tokenId("no such token")).isEmpty();
        assertThat(t.findToken(700)).isEmpty();
        assertThatThrownBy(() -> t.token(700))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("700");
    }

    /**
     * A lone surrogate is no Unicode text: HF tokenizers refuse it, and UTF-8 cannot encode it (Java's encoder
     * would have written '?', so "x\\ud83dy" encoded as "x?y"). A surrogate pair is one character.
     */
    @Test
    void encode_loneSurrogate_isRefused_aPairIsOneCharacter() {
        Tokenizer t = TokenizerGoldenTest.tokenizer("qwen-style");
        for (String lone : new String[] {"x\ud83dy", "\ude00", "ab\ud800"}) {
            assertThatThrownBy(() -> t.encode(lone))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("lone surrogate");
        }
        assertThat(t.decode(t.encode("x\ud83d\ude00y"), false)).isEqualTo("x\ud83d\ude00y");
    }

    @Test
    void addedTokenText_isMatchedAsTheSpecialToken_andDroppedBySkippingDecode() {
        Tokenizer t = TokenizerGoldenTest.tokenizer("qwen-style");
        int[] ids = t.encode("<|im_start|>user\nhi<|im_end|>");
        assertThat(ids[0]).isEqualTo(1);
        assertThat(ids[ids.length - 1]).isEqualTo(2);
        assertThat(t.decode(ids, true)).isEqualTo("user\nhi");
    }

    @Test
    void tokenBytes_keepAPartOfACharacterAsItsBytes_andAreEmptyForSpecialTokens() {
        Tokenizer llama = TokenizerGoldenTest.tokenizer("llama-style");
        int e2 = llama.tokenId("<0xE2>").orElseThrow();
        assertThat(llama.decode(new int[] {e2}, false)).isEqualTo("\uFFFD");
        assertThat(llama.tokenBytes(e2)).containsExactly((byte) 0xE2);
        // Not "a", decode(["▁a"]) alone: the decoder strips a leading space only at the start of a text, and a
        // token's bytes are what it adds to a text, so that the tokens' bytes join into it.
        assertThat(llama.tokenBytes(llama.tokenId("▁a").orElseThrow())).as("with the word's space")
                .isEqualTo(" a".getBytes(StandardCharsets.UTF_8));
        assertThat(llama.tokenBytes(llama.tokenId("</s>").orElseThrow())).isEmpty();

        Tokenizer byteLevel = TokenizerGoldenTest.tokenizer("bytelevel-style");
        int c3 = byteLevel.tokenId("Ã").orElseThrow();
        assertThat(byteLevel.decode(new int[] {c3}, false)).isEqualTo("\uFFFD");
        assertThat(byteLevel.tokenBytes(c3)).containsExactly((byte) 0xC3);
        assertThat(byteLevel.tokenBytes(byteLevel.tokenId("Ġthe").orElseThrow())).isEqualTo(" the".getBytes(StandardCharsets.UTF_8));
        for (int special : byteLevel.specialIds()) {
            assertThat(byteLevel.tokenBytes(special)).isEmpty();
        }
        assertThat(byteLevel.tokenBytes(-1)).isEmpty();
        assertThat(byteLevel.tokenBytes(byteLevel.vocabSize())).isEmpty();
    }

    /**
     * A token's bytes are what it adds to a text, a SentencePiece word's space included: joined, the bytes of a
     * text's tokens after other text are exactly what those tokens add to it, for every tokenizer style (the text
     * of a whole decode minus the text before them).
     */
    @ParameterizedTest
    @ValueSource(strings = {"llama-style", "metaspace-style", "qwen-style", "bytelevel-style"})
    void tokenBytes_joinIntoTheTextTheTokensAdd_afterOtherText(String style) {
        Tokenizer t = TokenizerGoldenTest.tokenizer(style);
        int[] before = t.encode("x");
        String beforeText = t.decode(before, true);
        int checked = 0;
        for (GoldenData.Case c : GoldenData.cases()) {
            if (!c.style().equals(style)) {
                continue;
            }
            int[] all = java.util.stream.IntStream.concat(java.util.Arrays.stream(before),
                    java.util.Arrays.stream(c.ids())).toArray();
            String whole = t.decode(all, true);
            assertThat(whole).as(c.toString()).startsWith(beforeText);
            java.io.ByteArrayOutputStream joined = new java.io.ByteArrayOutputStream();
            StringBuilder texts = new StringBuilder();
            for (int id : c.ids()) {
                joined.writeBytes(t.tokenBytes(id));
                texts.append(t.isSpecial(id) ? "" : t.tokenText(id));
            }
            String added = whole.substring(beforeText.length());
            assertThat(joined.toString(StandardCharsets.UTF_8)).as(c.toString()).isEqualTo(added);
            if (!added.contains("\uFFFD") && !texts.toString().contains("\uFFFD")) {
                assertThat(texts.toString()).as(c + ": token texts").isEqualTo(added);
            }
            checked++;
        }
        assertThat(checked).isPositive();
    }

    /**
     * tokenText: the text a token adds inside a text. A Metaspace decoder drops the ▁ of a text's first token only;
     * a Strip decoder after Fuse strips only the start of the text; a decoder that changes the anchor "a" still gives
     * the decode of the token alone.
     */
    @Test
    void tokenText_keepsTheSpaceADecoderDropsOnlyAtTheStartOfAText() {
        String bpe = """
                {"type": "BPE", "vocab": {"a": 0, "▁": 1, "▁a": 2, "b": 3}, "merges": [["▁", "a"]]}""";
        Tokenizer metaspace = Tokenizer.parse(TokenizerFormatErrorsTest.tokenizerJson("null", "null", bpe,
                "{\"type\": \"Metaspace\", \"replacement\": \"▁\", \"prepend_scheme\": \"always\"}"), "m");
        assertThat(metaspace.decode(new int[] {2}, false)).isEqualTo("a");
        assertThat(metaspace.tokenText(2)).isEqualTo(" a");
        assertThat(metaspace.tokenBytes(2)).isEqualTo(" a".getBytes(StandardCharsets.UTF_8));
        assertThat(metaspace.tokenText(0)).isEqualTo("a");
        assertThat(metaspace.tokenText(99)).isEmpty();

        Tokenizer replacesA = Tokenizer.parse(TokenizerFormatErrorsTest.tokenizerJson("null", "null", bpe,
                "{\"type\": \"Replace\", \"pattern\": {\"String\": \"a\"}, \"content\": \"b\"}"), "r");
        assertThat(replacesA.tokenText(2)).as("the token alone").isEqualTo("▁b");
    }

    /** The tiny test models under ../models ship the bytelevel-style tokenizer. */
    @ParameterizedTest
    @ValueSource(strings = {"mixtral-tiny", "mixtral-tiny-bf16", "qwen2moe-tiny"})
    void bundledTinyModels_encodeLikeTheBytelevelReference(String model) {
        Path file = Path.of("..", "models", model, "tokenizer.json");
        assumeThat(Files.exists(file)).as(file + " present").isTrue();
        Tokenizer t = Tokenizer.load(file);
        for (GoldenData.Case c : GoldenData.cases()) {
            if (c.style().equals("bytelevel-style")) {
                assertThat(t.encode(c.text())).as(c.toString()).containsExactly(c.ids());
            }
        }
    }

    /**
     * A 200k-character prompt per style, well beyond the 10k tokens a prompt may have. llama-style has no
     * pre-tokenizer, so each line between added tokens is a single BPE word: this catches quadratic merging.
     */
    @Test
    @Timeout(30)
    void encode_handlesLongPrompts_inLinearishTime() {
        StringBuilder sb = new StringBuilder();
        List<GoldenData.Case> cases = GoldenData.cases();
        while (sb.length() < 200_000) {
            for (GoldenData.Case c : cases) {
                sb.append(c.text()).append(' ');
            }
        }
        String text = sb.toString().replace("<s>", "").replace("<|im_start|>", "").replace("<|im_end|>", "");
        for (String style : GoldenData.STYLES) {
            Tokenizer t = TokenizerGoldenTest.tokenizer(style);
            long start = System.nanoTime();
            int[] ids = t.encode(text);
            Duration took = Duration.ofNanos(System.nanoTime() - start);
            assertThat(ids.length).as(style).isGreaterThan(20_000);
            assertThat(took).as(style + " took " + took).isLessThan(Duration.ofSeconds(10));
            if (!style.equals("metaspace-style") && !style.equals("qwen-style")) {
                assertThat(t.decode(ids, true)).as(style).isEqualTo(text);
            }
        }
    }
}
