package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.generate.TokenLogprobs;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.tokenizer.Tokenizer;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** Completions logprobs on the tiny model's byte-level tokenizer (OpenAiChunks). */
class OpenAiChunksTest {
    private static final Tokenizer TOKENIZER = Tokenizer.load(
            TestModels.dir(TestModels.MIXTRAL).resolve("tokenizer.json"));

    /** Tokens that are one byte of a multi-byte character: each decodes to U+FFFD on its own. */
    private static int[] partsOfCharacters(int n) {
        return IntStream.range(0, TOKENIZER.vocabSize()).filter(id -> {
            byte[] b = TOKENIZER.tokenBytes(id);
            return b.length == 1 && (b[0] & 0x80) != 0;
        }).limit(n).toArray();
    }

    @SuppressWarnings("unchecked")
    private static List<Map<String, Float>> topLogprobs(int[] topIds) {
        OpenAiChunks chunks = new OpenAiChunks(false, "cmpl-test", "m", TOKENIZER);
        float[] lps = new float[topIds.length];
        for (int i = 0; i < lps.length; i++) {
            lps[i] = -1 - i;
        }
        TokenLogprobs lp = new TokenLogprobs(topIds[0], -1, topIds, lps);
        Map<String, Object> choice = ((List<Map<String, Object>>) chunks.chunk("", List.of(lp, lp), null, false)
                .get("choices")).getFirst();
        return (List<Map<String, Float>>) ((Map<String, Object>) choice.get("logprobs")).get("top_logprobs");
    }

    @Test
    void alternativesThatArePartsOfACharacter_keepOneEntryEach_keyedByTheirBytes() {
        int[] ids = partsOfCharacters(5);
        assertThat(ids).hasSize(5);
        for (Map<String, Float> entry : topLogprobs(ids)) {
            assertThat(entry).hasSize(5);
            assertThat(entry.keySet()).allMatch(k -> k.matches("bytes:\\\\x[89a-f][0-9a-f]"));
            assertThat(entry.values()).containsExactly(-1f, -2f, -3f, -4f, -5f);
        }
    }

    @Test
    void textAlternatives_keepTheirText_andEveryEntryHasExactlyLogprobsKeys() {
        int a = TOKENIZER.encode("a")[0];
        int b = TOKENIZER.encode("b")[0];
        int eos = TOKENIZER.tokenId("</s>").orElseThrow();
        int[] parts = partsOfCharacters(2);
        for (Map<String, Float> entry : topLogprobs(new int[] {a, parts[0], b, parts[1], eos})) {
            assertThat(entry).hasSize(5).containsKeys("a", "b", "</s>");
        }
    }
}
