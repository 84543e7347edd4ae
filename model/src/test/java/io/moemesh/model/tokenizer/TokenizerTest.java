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
        assertThat(llama.tokenBytes(llama.tokenId("▁a").orElseThrow())).as("as decode spells it")
                .isEqualTo("a".getBytes(StandardCharsets.UTF_8));
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
