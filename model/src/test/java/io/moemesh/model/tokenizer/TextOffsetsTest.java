package io.moemesh.model.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * Offsets against the decoded text itself, on a byte-level tokenizer (one U+FFFD per ill-formed subpart of all the
 * bytes) and a byte-fallback one (one U+FFFD per byte of a run that is not valid UTF-8): the text starts with a
 * token's text at its offset, broken characters before it or not.
 */
class TextOffsetsTest {
    private static final Tokenizer BYTE_LEVEL = load("bytelevel-style");
    private static final Tokenizer LLAMA = load("llama-style");

    private static Tokenizer load(String name) {
        return Tokenizer.load(Path.of("src/test/resources/tokenizers", name, "tokenizer.json"));
    }

    /** The byte-level token that is the single byte {@code b}. */
    private static int byteLevel(int b) {
        return IntStream.range(0, BYTE_LEVEL.vocabSize())
                .filter(id -> Arrays.equals(BYTE_LEVEL.tokenBytes(id), new byte[] {(byte) b})).findFirst().orElseThrow();
    }

    private static int llama(String token) {
        return LLAMA.tokenId(token).orElseThrow();
    }

    private static List<Integer> offsets(Tokenizer t, int... ids) {
        TextOffsets offsets = t.textOffsets();
        List<Integer> out = new ArrayList<>();
        for (int id : ids) {
            out.add(offsets.add(id));
        }
        return out;
    }

    @Test
    void byteLevel_aBrokenSequenceIsOneReplacement_andTheTokenAfterItStartsRightAfter() {
        int[] ids = {byteLevel(0xE2), byteLevel(0x82), byteLevel('A'), byteLevel(0xC3), byteLevel(0xA9), byteLevel('B')};
        assertThat(BYTE_LEVEL.decode(ids, true)).isEqualTo("\uFFFDAéB");
        assertThat(offsets(BYTE_LEVEL, ids)).containsExactly(0, 0, 1, 2, 2, 3);
    }

    @Test
    void byteFallback_aRunThatIsNotValidIsOneReplacementPerByte_andTheTokenAfterItStartsAfterThemAll() {
        int[] ids = {llama("<0xE2>"), llama("<0x82>"), llama("A"), llama("<0xC3>"), llama("<0xA9>"), llama("B")};
        assertThat(LLAMA.decode(ids, true)).isEqualTo("\uFFFD\uFFFDAéB");
        assertThat(offsets(LLAMA, ids)).containsExactly(0, 0, 2, 3, 3, 4);
        // A valid character, then a byte that makes the run invalid: every byte of it is U+FFFD.
        int[] run = {llama("<0xC3>"), llama("<0xA9>"), llama("<0xE2>"), llama("B")};
        assertThat(LLAMA.decode(run, true)).isEqualTo("\uFFFD\uFFFD\uFFFDB");
        assertThat(offsets(LLAMA, run).getLast()).isEqualTo(3);
    }

    @Test
    void randomTokens_theTextStartsWithEveryWholeTokensText_atItsOffset() {
        SplittableRandom random = new SplittableRandom(7);
        for (Tokenizer t : List.of(BYTE_LEVEL, LLAMA)) {
            int[] prompt = t.encode("The");
            for (int round = 0; round < 200; round++) {
                int[] generated = random.ints(12, 0, t.vocabSize()).map(id -> random.nextInt(3) == 0
                        ? byteToken(t, random.nextInt(256)) : id).toArray();
                int[] all = IntStream.concat(Arrays.stream(prompt), Arrays.stream(generated)).toArray();
                String text = t.decode(all, true).substring(t.decode(prompt, true).length());
                List<Integer> offsets = offsets(t, generated);
                for (int i = 0; i < generated.length; i++) {
                    String own = t.tokenText(generated[i]);
                    if (t.isSpecial(generated[i]) || own.indexOf('\uFFFD') >= 0
                            || t == LLAMA && t.spelledBytes(generated[i]) != null) {
                        continue;
                    }
                    int at = text.offsetByCodePoints(0, offsets.get(i));
                    assertThat(text.startsWith(own, at)).as("%s token %d %s at %d of %s", t == LLAMA ? "llama"
                            : "byte-level", i, own, offsets.get(i), text).isTrue();
                }
            }
        }
    }

    private static int byteToken(Tokenizer t, int b) {
        return t == LLAMA ? llama(String.format("<0x%02X>", b)) : byteLevel(b);
    }
}
