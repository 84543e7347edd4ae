package io.moemesh.model.tokenizer;

import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The {@code normalizer} step of a tokenizer.json. HF runs it on each piece of input left between added tokens
 * (added_vocabulary.rs, {@code extract_and_normalize}), never on the whole text at once, which is why llama-style's
 * {@code Prepend("▁")} puts a "▁" after every {@code <s>}. Offsets are not tracked: encode only needs the text.
 */
sealed interface Normalizer {
    String normalize(String text);

    /**
     * How many UTF-8 bytes of input can at most become one byte of output ({@code utf8(in) <= k * utf8(out)}), or
     * 0 when output can be arbitrarily shorter (text removed). Used for {@link Tokenizer#maxInputBytesPerToken()}.
     */
    int maxShrink();

    /** Whether the output consists of byte-level alphabet characters only (see {@link ByteLevelAlphabet}). */
    default boolean spellsBytes() {
        return false;
    }

    /** normalizers/utils.rs {@code Sequence}: each normalizer on the output of the previous one. */
    record Sequence(List<Normalizer> normalizers) implements Normalizer {
        public Sequence {
            normalizers = List.copyOf(normalizers);
        }

        @Override
        public String normalize(String text) {
            String s = text;
            for (Normalizer n : normalizers) {
                s = n.normalize(s);
            }
            return s;
        }

        /** The product: each step shrinks what the previous one produced. */
        @Override
        public int maxShrink() {
            long k = 1;
            for (Normalizer n : normalizers) {
                k *= n.maxShrink();
                if (k == 0 || k > Integer.MAX_VALUE) {
                    return 0;
                }
            }
            return (int) k;
        }

        @Override
        public boolean spellsBytes() {
            return !normalizers.isEmpty() && normalizers.getLast().spellsBytes();
        }
    }

    /** normalizers/prepend.rs: prepends unless the piece is empty. */
    record Prepend(String prefix) implements Normalizer {
        @Override
        public String normalize(String text) {
            return text.isEmpty() ? text : prefix + text;
        }

        @Override
        public int maxShrink() {
            return 1;
        }
    }

    /** normalizers/replace.rs: every non-overlapping match of a literal or regex becomes {@code content}. */
    record Replace(Pattern pattern, String content) implements Normalizer {
        @Override
        public String normalize(String text) {
            return pattern.matcher(text).replaceAll(Matcher.quoteReplacement(content));
        }

        /**
         * A literal (how {@link HfRegex#literal} quotes it) of L bytes replaced by C > 0 bytes shrinks by at most
         * ceil(L / C); a regex may match any length, and an empty content deletes: no bound.
         */
        @Override
        public int maxShrink() {
            String p = pattern.pattern();
            if (content.isEmpty() || !p.startsWith("\\Q") || !p.endsWith("\\E") || p.indexOf("\\E") != p.length() - 2) {
                return 0;
            }
            int literal = Utf8.encode(p.substring(2, p.length() - 2)).length;
            int replacement = Utf8.encode(content).length;
            return Math.max(1, (literal + replacement - 1) / replacement);
        }
    }

    /**
     * normalizers/unicode.rs NFC, NFD, NFKC, NFKD: {@link java.text.Normalizer}'s result, in time near-linear even
     * on long runs of combining marks (see {@link UnicodeNormalization}).
     */
    record UnicodeForm(java.text.Normalizer.Form form) implements Normalizer {
        @Override
        public String normalize(String text) {
            return UnicodeNormalization.normalize(text, form);
        }

        /**
         * Unicode normalization never deletes a character; it maps each character (or a starter with its marks) to
         * one that can be shorter. Canonical forms: at most 3 (U+212A KELVIN SIGN, 3 bytes, becomes "K"; three
         * conjoining Hangul jamo, 9 bytes, one syllable of 3). Compatibility forms: at most 4 (U+1D400
         * MATHEMATICAL BOLD CAPITAL A, 4 bytes, becomes "A"). NormalizerShrinkTest checks every code point.
         */
        @Override
        public int maxShrink() {
            return form == java.text.Normalizer.Form.NFC || form == java.text.Normalizer.Form.NFD ? 3 : 4;
        }
    }

    /**
     * normalizers/utils.rs {@code Lowercase}: Rust's per-character {@code char::to_lowercase}, which has no
     * final-sigma rule (unlike {@link String#toLowerCase}) and maps U+0130 to "i̇".
     */
    record Lowercase() implements Normalizer {
        @Override
        public String normalize(String text) {
            StringBuilder out = new StringBuilder(text.length());
            text.codePoints().forEach(cp -> {
                if (cp == 0x130) {
                    out.append("i\u0307");
                } else {
                    out.appendCodePoint(Character.toLowerCase(cp));
                }
            });
            return out.toString();
        }

        /** One code point to one code point: at most 3 bytes to 1 (U+212A KELVIN SIGN becomes "k"). */
        @Override
        public int maxShrink() {
            return 3;
        }
    }

    /** normalizers/strip.rs: removes leading and/or trailing Unicode White_Space. */
    record Strip(boolean left, boolean right) implements Normalizer {
        @Override
        public String normalize(String text) {
            int start = 0;
            int end = text.length();
            if (left) {
                while (start < end && Unicode.isWhiteSpace(text.codePointAt(start))) {
                    start += Character.charCount(text.codePointAt(start));
                }
            }
            if (right) {
                while (end > start && Unicode.isWhiteSpace(text.codePointBefore(end))) {
                    end -= Character.charCount(text.codePointBefore(end));
                }
            }
            return text.substring(start, end);
        }

        /** Removes any amount of white space: no bound. */
        @Override
        public int maxShrink() {
            return 0;
        }
    }

    /** normalizers/byte_level.rs: the GPT-2 byte alphabet applied to the whole piece, without splitting. */
    record ByteLevel() implements Normalizer {
        @Override
        public String normalize(String text) {
            return ByteLevelAlphabet.encode(text);
        }

        /** Every byte becomes one alphabet character of 1 or 2 bytes: never shorter. */
        @Override
        public int maxShrink() {
            return 1;
        }

        @Override
        public boolean spellsBytes() {
            return true;
        }
    }
}
