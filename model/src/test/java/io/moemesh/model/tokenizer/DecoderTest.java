package io.moemesh.model.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** Decoders against the examples of HF's decoder tests. */
class DecoderTest {

    @Test
    void byteFallback_decodesRunsOfByteTokens_andGivesOneReplacementPerByteOfAnInvalidRun() {
        Decoder d = new Decoder.ByteFallback();
        assertThat(d.decodeChain(List.of("Hey", "friend!"))).containsExactly("Hey", "friend!");
        assertThat(d.decodeChain(List.of("<0x61>"))).containsExactly("a");
        assertThat(d.decodeChain(List.of("<0xE5>"))).containsExactly("\uFFFD");
        assertThat(d.decodeChain(List.of("<0xE5>", "<0x8f>"))).containsExactly("\uFFFD", "\uFFFD");
        assertThat(d.decodeChain(List.of("<0xE5>", "<0x8f>", "<0xab>"))).containsExactly("叫");
        assertThat(d.decodeChain(List.of("<0xE5>", "<0x8f>", "<0xab>", "a"))).containsExactly("叫", "a");
        assertThat(d.decodeChain(List.of("<0xE5>", "<0x8f>", "a"))).containsExactly("\uFFFD", "\uFFFD", "a");
    }

    @Test
    void strip_removesUpToStartLeadingAndStopTrailingCharacters_fromEveryToken() {
        assertThat(new Decoder.Strip('H', 1, 0).decodeChain(List.of("Hey", " friend!", "HHH")))
                .containsExactly("ey", " friend!", "HH");
        assertThat(new Decoder.Strip('y', 0, 1).decodeChain(List.of("Hey", " friend!")))
                .containsExactly("He", " friend!");
        assertThat(new Decoder.Strip(' ', 1, 1).decodeChain(List.of(" ", ""))).containsExactly("", "");
    }

    @Test
    void stripAfterFuse_actsOnTheFusedString() {
        Decoder d = new Decoder.Sequence(List.of(new Decoder.Fuse(), new Decoder.Strip(' ', 1, 0)));
        assertThat(d.decode(List.of(" a", " b"))).isEqualTo("a b");
        assertThat(new Decoder.Strip(' ', 1, 0).decode(List.of(" a", " b"))).isEqualTo("ab");
    }

    @Test
    void metaspace_turnsReplacementsIntoSpaces_exceptInTheFirstTokenUnlessNever() {
        assertThat(new Decoder.Metaspace('▁', PreTokenizer.PrependScheme.ALWAYS)
                .decodeChain(List.of("▁Hey", "▁friend!"))).containsExactly("Hey", " friend!");
        assertThat(new Decoder.Metaspace('▁', PreTokenizer.PrependScheme.NEVER)
                .decodeChain(List.of("▁Hey", "▁friend!"))).containsExactly(" Hey", " friend!");
    }

    @Test
    void byteLevel_joinsBytesAcrossTokens_andReplacesInvalidUtf8LikeFromUtf8Lossy() {
        Decoder d = new Decoder.ByteLevel();
        // "é" is C3 A9, spelled "Ã©"; split across two tokens it still decodes.
        assertThat(d.decode(List.of("Ã", "©", "Ġok"))).isEqualTo("é ok");
        assertThat(d.decode(List.of("Ã", "Ġok"))).isEqualTo("\uFFFD ok");
        // Characters outside the alphabet (an added token such as <|im_start|> is inside it; "日" is not).
        assertThat(d.decode(List.of("日", "Ġx"))).isEqualTo("日 x");
    }

    @Test
    void tokenBytes_areTheBytesADecoderSpells_beforeTheyAreReadAsUtf8() {
        Decoder byteLevel = new Decoder.ByteLevel();
        assertThat(byteLevel.tokenBytes("Ã")).containsExactly((byte) 0xC3);
        assertThat(byteLevel.tokenBytes("Ġok")).isEqualTo(" ok".getBytes(StandardCharsets.UTF_8));
        assertThat(byteLevel.tokenBytes("日")).isEqualTo("日".getBytes(StandardCharsets.UTF_8));
        assertThat(new Decoder.ByteFallback().tokenBytes("<0xE5>")).containsExactly((byte) 0xE5);
        assertThat(new Decoder.ByteFallback().tokenBytes("Hey")).isNull();
        Decoder llama = new Decoder.Sequence(List.of(new Decoder.Replace(Pattern.compile("▁"), " "),
                new Decoder.ByteFallback(), new Decoder.Fuse(), new Decoder.Strip(' ', 1, 0)));
        assertThat(llama.tokenBytes("<0xE5>")).containsExactly((byte) 0xE5);
        assertThat(llama.tokenBytes("▁Hey")).as("text: left to decode").isNull();
    }

    @Test
    void utf8Lossy_replacesEachMaximalIllFormedSubpartOnce_likeRust() {
        assertThat(lossy(0x48, 0xF0, 0x90, 0x80, 0x57)).isEqualTo("H\uFFFDW");
        assertThat(lossy(0xED, 0xA0, 0x80)).isEqualTo("\uFFFD\uFFFD\uFFFD");
        assertThat(lossy(0xE5, 0x8F)).isEqualTo("\uFFFD");
        assertThat(lossy(0xF4, 0x90, 0x80, 0x80)).isEqualTo("\uFFFD\uFFFD\uFFFD\uFFFD");
        assertThat(lossy(0xC0, 0x80)).isEqualTo("\uFFFD\uFFFD");
        assertThat(lossy(0xF0, 0x9F, 0x99, 0x82)).isEqualTo("🙂");
    }

    private static String lossy(int... bytes) {
        byte[] b = new byte[bytes.length];
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) bytes[i];
        }
        return Utf8.decodeLossy(b, b.length);
    }
}
