package io.moemesh.model.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import java.text.Normalizer.Form;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link UnicodeNormalization}: the JDK's result (and so HF's) without the JDK's quadratic time on long runs of
 * combining marks.
 */
class UnicodeNormalizationTest {
    /** Starters, precomposed letters, Hangul, compatibility characters and characters decomposing to marks. */
    private static final int[] STARTERS = {'a', 'e', 'o', 'A', 'K', ' ', 0xE9, 0x1EA1, 0x1EAD, 0x1F00, 0x01C5,
        0x212B, 0x212A, 0xFB01, 0x3232, 0x304B, 0xFF76, 0xAC00, 0xAC01, 0x1100, 0x1161, 0x11A8, 0x0F73, 0x0F75,
        0x0344, 0x0F81, 0xFF9E, 0xFF9F, 0x0903, 0x1D15E, 0x2ADC, 0x05D0, 0x0E01, 0x0627, 0x0915};
    /** Non-starters of many classes (1, 7, 8, 9, 10, 11, 33, 103, 107, 118, 122, 129, 130, 132, 202, ...). */
    private static final int[] MARKS = {0x0334, 0x093C, 0x3099, 0x309A, 0x094D, 0x05B0, 0x05B1, 0x0651, 0x0E38,
        0x0E48, 0x0EB8, 0x0EC8, 0x0F71, 0x0F72, 0x0F74, 0x0327, 0x1DCE, 0x1D165, 0x0323, 0x302A, 0x0302, 0x1D16D,
        0x302E, 0x05AE, 0x0301, 0x0300, 0x0308, 0x0315, 0x035C, 0x035D, 0x0345, 0x0340, 0x0343};

    @Test
    void byCodePoint_equalsTheJdk_onRandomMixesOfStartersAndMarksOfManyClasses() {
        Random random = new Random(20250611);
        for (int i = 0; i < 2000; i++) {
            StringBuilder s = new StringBuilder();
            int length = 1 + random.nextInt(40);
            for (int j = 0; j < length; j++) {
                int[] from = random.nextInt(4) == 0 ? STARTERS : MARKS;
                s.appendCodePoint(from[random.nextInt(from.length)]);
            }
            String text = s.toString();
            for (Form form : Form.values()) {
                assertThat(UnicodeNormalization.byCodePoint(text, form)).as("%s of %s", form, codePoints(text))
                        .isEqualTo(java.text.Normalizer.normalize(text, form));
                assertThat(UnicodeNormalization.normalize(text, form)).as("%s of %s", form, codePoints(text))
                        .isEqualTo(java.text.Normalizer.normalize(text, form));
            }
        }
    }

    @Test
    void byCodePoint_equalsTheJdk_forEveryMarkAndEveryDecomposingCodePoint_betweenMarks() {
        for (int cp = 0; cp <= Character.MAX_CODE_POINT; cp++) {
            String c = Character.toString(cp);
            if (!UnicodeNormalization.mayBeginWithNonStarter(cp)
                    && java.text.Normalizer.isNormalized(c, Form.NFKD)) {
                continue;
            }
            String text = "a\u0323" + c + "\u0301\u0334" + c + "\u0F71" + c;
            for (Form form : Form.values()) {
                assertThat(UnicodeNormalization.byCodePoint(text, form)).as("%s of U+%04X", form, cp)
                        .isEqualTo(java.text.Normalizer.normalize(text, form));
            }
        }
    }

    /** What keeps a JDK with a newer Unicode from sending a long run down its quadratic path unnoticed. */
    @Test
    void mayBeginWithNonStarter_holdsForEveryCodePointWhoseDecompositionBeginsWithANonStarter() {
        for (int cp = 0; cp <= Character.MAX_CODE_POINT; cp++) {
            // The JDK's normalizer has the Unicode version of Character: what that does not know is an inert starter.
            if (UnicodeNormalization.mayBeginWithNonStarter(cp) || !Character.isDefined(cp)) {
                continue;
            }
            String c = Character.toString(cp);
            for (Form form : new Form[] {Form.NFD, Form.NFKD}) {
                int lead = java.text.Normalizer.normalize(c, form).codePointAt(0);
                assertThat(UnicodeNormalization.isNonStarter(lead)).as("U+%04X in %s", cp, form).isFalse();
            }
        }
    }

    /** Expected values from HF tokenizers 0.23.2's NFC, NFD, NFKC and NFKD normalizers. */
    @Test
    void longRunsOfMarks_normalizeAsHuggingFaceDoes() {
        int n = 300;
        String alternating = "a" + "\u0301\u0323".repeat(n);
        expect(alternating, Form.NFD, "a" + "\u0323".repeat(n) + "\u0301".repeat(n));
        expect(alternating, Form.NFKD, "a" + "\u0323".repeat(n) + "\u0301".repeat(n));
        expect(alternating, Form.NFC, "\u1EA1" + "\u0323".repeat(n - 1) + "\u0301".repeat(n));
        expect(alternating, Form.NFKC, "\u1EA1" + "\u0323".repeat(n - 1) + "\u0301".repeat(n));
        // U+0F73 decomposes to two marks of classes 129 and 130, and is excluded from composition.
        String tibetan = "\u0F73".repeat(n);
        for (Form form : Form.values()) {
            expect(tibetan, form, "\u0F71".repeat(n) + "\u0F72".repeat(n));
        }
        // U+FF9E is a starter with a compatibility decomposition to U+3099 (class 8), which composes with か.
        String halfwidth = "\u304B" + "\uFF9E\u0301".repeat(n);
        expect(halfwidth, Form.NFD, halfwidth);
        expect(halfwidth, Form.NFC, halfwidth);
        expect(halfwidth, Form.NFKD, "\u304B" + "\u3099".repeat(n) + "\u0301".repeat(n));
        expect(halfwidth, Form.NFKC, "\u304C" + "\u3099".repeat(n - 1) + "\u0301".repeat(n));
        // Conjoining jamo are starters: each vowel ends the run before it.
        String hangul = "\u1100" + "\u1161\u0301\u0323".repeat(n);
        expect(hangul, Form.NFD, "\u1100" + "\u1161\u0323\u0301".repeat(n));
        expect(hangul, Form.NFKD, "\u1100" + "\u1161\u0323\u0301".repeat(n));
        expect(hangul, Form.NFC, "\uAC00" + "\u0323\u0301\u1161".repeat(n - 1) + "\u0323\u0301");
        expect(hangul, Form.NFKC, "\uAC00" + "\u0323\u0301\u1161".repeat(n - 1) + "\u0323\u0301");
    }

    /** 1 MiB of UTF-8 whose marks all need reordering: the JDK alone took over a minute for NFC. */
    @Test
    @Timeout(value = 20, unit = TimeUnit.SECONDS)
    void aMegabyteOfMarksToReorder_normalizesInEveryForm_longBeforeTheTimeout() {
        int n = 1 << 18;
        String alternating = "a" + "\u0301\u0323".repeat(n);
        String tibetan = "\u0F73".repeat(n);
        for (Form form : Form.values()) {
            Normalizer normalizer = new Normalizer.UnicodeForm(form);
            String composedHead = form == Form.NFC || form == Form.NFKC ? "\u1EA1" : "a\u0323";
            assertThat(normalizer.normalize(alternating))
                    .isEqualTo(composedHead + "\u0323".repeat(n - 1) + "\u0301".repeat(n));
            assertThat(normalizer.normalize(tibetan)).isEqualTo("\u0F71".repeat(n) + "\u0F72".repeat(n));
        }
    }

    @Test
    void shortRunsAndPlainText_keepTheJdkPath() {
        assertThat(UnicodeNormalization.hasLongRun("caf\u00E9 na\u0131\u0308ve \u65E5\u672C")).isFalse();
        assertThat(UnicodeNormalization.hasLongRun("a" + "\u0301".repeat(UnicodeNormalization.LONG_RUN)))
                .isFalse();
        assertThat(UnicodeNormalization.hasLongRun("a" + "\u0301".repeat(UnicodeNormalization.LONG_RUN + 1)))
                .isTrue();
        assertThat(UnicodeNormalization.hasLongRun("\uFF9E".repeat(UnicodeNormalization.LONG_RUN + 1))).isTrue();
    }

    private static void expect(String text, Form form, String expected) {
        assertThat(new Normalizer.UnicodeForm(form).normalize(text)).as("%s", form).isEqualTo(expected);
        assertThat(java.text.Normalizer.normalize(text, form)).as("the JDK's %s", form).isEqualTo(expected);
    }

    private static String codePoints(String s) {
        StringBuilder out = new StringBuilder();
        s.codePoints().forEach(cp -> out.append(String.format("U+%04X ", cp)));
        return out.toString().trim();
    }
}
