package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.generate.TokenLogprobs;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * Logprobs objects (OpenAiChunks) on the tiny model's byte-level tokenizer and on a SentencePiece one (llama-style:
 * byte fallback, a word's space stripped at the start of a text only).
 */
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
        OpenAiChunks chunks = new OpenAiChunks(false, "cmpl-test", "m", TOKENIZER, false);
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

    private static final Tokenizer LLAMA = Tokenizer.load(
            Path.of("../model/src/test/resources/tokenizers/llama-style/tokenizer.json"));

    private static int llama(String token) {
        return LLAMA.tokenId(token).orElseThrow();
    }

    /** A step: sampled token and logprob, alternatives with -1, -2, ... (more likely first). */
    private static TokenLogprobs step(int token, float logprob, int... top) {
        float[] lps = new float[top.length];
        for (int i = 0; i < top.length; i++) {
            lps[i] = top[i] == token ? logprob : -1 - i;
        }
        return new TokenLogprobs(token, logprob, top, lps);
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> logprobs(OpenAiChunks chunks, List<TokenLogprobs> steps) {
        Map<String, Object> choice = ((List<Map<String, Object>>) chunks.chunk("", steps, null, false)
                .get("choices")).getFirst();
        return (Map<String, Object>) choice.get("logprobs");
    }

    /**
     * {@code top_logprobs[i][tokens[i]]} is the sampled token's logprob, whatever its text: a part of a character
     * (keyed by its bytes in both), a text two tokens share (byte-fallback {@code <0x61>} and "a": the sampled one
     * keeps the text, the other is token_id:), a token less likely than the alternatives (added: OpenAI's up to
     * logprobs+1 entries) and logprobs 0 (the sampled token alone).
     */
    @Test
    @SuppressWarnings("unchecked")
    void everyTopLogprobsEntry_holdsTheSampledTokenUnderItsTokensKey_withItsLogprob() {
        int a = llama("a");
        int byteA = llama("<0x61>");
        int e2 = llama("<0xE2>");
        int spaceA = llama("\u2581a");
        List<TokenLogprobs> steps = List.of(
                step(byteA, -2, a, byteA, spaceA),
                step(a, -1, a, byteA),
                step(e2, -3, a, e2, llama("<0xE3>")),
                step(spaceA, -7, a, byteA),
                new TokenLogprobs(a, -0.5f, new int[0], new float[0]));
        Map<String, Object> lp = logprobs(new OpenAiChunks(false, "cmpl-test", "m", LLAMA, false), steps);
        List<String> tokens = (List<String>) lp.get("tokens");
        List<Float> tokenLogprobs = (List<Float>) lp.get("token_logprobs");
        List<Map<String, Float>> top = (List<Map<String, Float>>) lp.get("top_logprobs");
        assertThat(tokens).containsExactly("a", "a", "bytes:\\xe2", " a", "a");
        assertThat(tokenLogprobs).containsExactly(-2f, -1f, -3f, -7f, -0.5f);
        for (int i = 0; i < tokens.size(); i++) {
            assertThat(top.get(i)).as("step %d", i).containsEntry(tokens.get(i), tokenLogprobs.get(i));
        }
        assertThat(top.get(0)).containsExactly(Map.entry("token_id:" + a, -1f), Map.entry("a", -2f),
                Map.entry(" a", -3f));
        assertThat(top.get(1)).containsExactly(Map.entry("a", -1f), Map.entry("token_id:" + byteA, -2f));
        assertThat(top.get(3)).as("logprobs + 1 entries").containsExactly(Map.entry("a", -1f),
                Map.entry("token_id:" + byteA, -2f), Map.entry(" a", -7f));
        assertThat(top.get(4)).containsExactly(Map.entry("a", -0.5f));
    }

    /**
     * text_offset is where each token's text starts in the completion's text, counted on across a stream's chunks:
     * a SentencePiece word's token starts with its space there, and a character split into byte-fallback tokens
     * counts once, when it is complete.
     */
    @Test
    @SuppressWarnings("unchecked")
    void textOffset_isWhereEachTokensTextStarts_inTheCompletionsText() {
        int[] prompt = LLAMA.encode("The");
        int[] generated = LLAMA.encode("x is é and an apple");
        int[] all = java.util.stream.IntStream.concat(Arrays.stream(prompt), Arrays.stream(generated)).toArray();
        String text = LLAMA.decode(all, true).substring(LLAMA.decode(prompt, true).length());
        assertThat(text).isEqualTo(" x is é and an apple");
        assertThat(LLAMA.tokens(generated)).as("é is split into bytes").contains("<0xC3>", "<0xA9>");
        OpenAiChunks chunks = new OpenAiChunks(false, "cmpl-test", "m", LLAMA, false);
        List<String> tokens = new ArrayList<>();
        List<Integer> offsets = new ArrayList<>();
        // Two chunks, cut inside é.
        int cut = LLAMA.tokens(generated).indexOf("<0xA9>");
        for (int[] part : new int[][] {Arrays.copyOf(generated, cut), Arrays.copyOfRange(generated, cut,
                generated.length)}) {
            Map<String, Object> lp = logprobs(chunks, Arrays.stream(part).mapToObj(id -> step(id, -1, id)).toList());
            tokens.addAll((List<String>) lp.get("tokens"));
            offsets.addAll((List<Integer>) lp.get("text_offset"));
        }
        int checked = 0;
        for (int i = 0; i < tokens.size(); i++) {
            int at = text.offsetByCodePoints(0, offsets.get(i));
            if (tokens.get(i).startsWith("bytes:")) {
                assertThat(text.substring(at)).as("token %d, a part of é", i).startsWith("é");
            } else {
                assertThat(text.startsWith(tokens.get(i), at)).as("token %d %s at %d of %s", i, tokens.get(i),
                        offsets.get(i), text).isTrue();
                checked++;
            }
        }
        assertThat(checked).isGreaterThan(5);
    }

    /** Chat logprobs' bytes join into the content: a SentencePiece word's token keeps its space. */
    @Test
    @SuppressWarnings("unchecked")
    void chatBytes_joinIntoTheContent_onASentencePieceTokenizer() {
        int[] prompt = LLAMA.encode("[INST] Hi [/INST]");
        int[] generated = LLAMA.encode("and an apple é!");
        int[] all = java.util.stream.IntStream.concat(Arrays.stream(prompt), Arrays.stream(generated)).toArray();
        String content = LLAMA.decode(all, true).substring(LLAMA.decode(prompt, true).length());
        OpenAiChunks chunks = new OpenAiChunks(true, "chatcmpl-test", "m", LLAMA, false);
        Map<String, Object> lp = logprobs(chunks, Arrays.stream(generated).mapToObj(id -> step(id, -1, id)).toList());
        java.io.ByteArrayOutputStream joined = new java.io.ByteArrayOutputStream();
        for (Map<String, Object> entry : (List<Map<String, Object>>) lp.get("content")) {
            for (int b : (List<Integer>) entry.get("bytes")) {
                joined.write(b);
            }
            if (!((String) entry.get("token")).contains("\uFFFD")) {
                assertThat(content).contains((String) entry.get("token"));
            }
        }
        assertThat(joined.toString(StandardCharsets.UTF_8)).isEqualTo(content).startsWith(" and");
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

    /** The byte-level token that is the single byte {@code b}. */
    private static int byteLevel(int b) {
        return IntStream.range(0, TOKENIZER.vocabSize())
                .filter(id -> Arrays.equals(TOKENIZER.tokenBytes(id), new byte[] {(byte) b})).findFirst().orElseThrow();
    }

    /**
     * After bytes that are not valid UTF-8 the offsets follow the text the decoder gives: a byte-level one makes E2 82
     * one U+FFFD, a byte-fallback one a U+FFFD per byte of the run; a part of a character points where it would be.
     */
    @Test
    @SuppressWarnings("unchecked")
    void textOffset_afterBrokenCharacters_pointsIntoTheTextTheDecoderGives() {
        int[][] byteLevel = {{byteLevel(0xE2), byteLevel(0x82)}, {byteLevel('A'), byteLevel(0xC3)},
                {byteLevel(0xA9), byteLevel(0xF0), byteLevel('B')}};
        int[][] byteFallback = {{llama("<0xE2>"), llama("<0x82>")}, {llama("A"), llama("<0xC3>")},
                {llama("<0xA9>"), llama("<0xF0>"), llama("B")}};
        for (Tokenizer t : List.of(TOKENIZER, LLAMA)) {
            int[][] chunked = t == LLAMA ? byteFallback : byteLevel;
            int[] all = Arrays.stream(chunked).flatMapToInt(Arrays::stream).toArray();
            String text = t.decode(all, true);
            assertThat(text).isEqualTo(t == LLAMA ? "\uFFFD\uFFFDA\uFFFD\uFFFD\uFFFDB" : "\uFFFDAé\uFFFDB");
            OpenAiChunks chunks = new OpenAiChunks(false, "cmpl-test", "m", t, false);
            List<String> tokens = new ArrayList<>();
            List<Integer> offsets = new ArrayList<>();
            for (int[] part : chunked) {
                Map<String, Object> lp = logprobs(chunks, Arrays.stream(part).mapToObj(id -> step(id, -1, id)).toList());
                tokens.addAll((List<String>) lp.get("tokens"));
                offsets.addAll((List<Integer>) lp.get("text_offset"));
            }
            assertThat(tokens).containsExactly("bytes:\\xe2", "bytes:\\x82", "A", "bytes:\\xc3", "bytes:\\xa9",
                    "bytes:\\xf0", "B");
            // Byte-level: E2 82 = U+FFFD, A, C3 A9 = é, F0 = U+FFFD, B. Byte fallback: the run E2 82 is two U+FFFD,
            // A, and the run C3 A9 F0 three (F0 breaks it, after its bytes were sent as é and a character to come), B.
            assertThat(offsets).as(t == LLAMA ? "byte fallback" : "byte level")
                    .containsExactlyElementsOf(t == LLAMA ? List.of(0, 0, 2, 3, 3, 4, 6) : List.of(0, 0, 1, 2, 2, 3, 4));
            for (int i : new int[] {2, 6}) {
                assertThat(text.startsWith(tokens.get(i), text.offsetByCodePoints(0, offsets.get(i)))).isTrue();
            }
        }
    }
}
