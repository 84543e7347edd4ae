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
    }

    /** normalizers/prepend.rs: prepends unless the piece is empty. */
    record Prepend(String prefix) implements Normalizer {
        @Override
        public String normalize(String text) {
            return text.isEmpty() ? text : prefix + text;
        }
    }

    /** normalizers/replace.rs: every non-overlapping match of a literal or regex becomes {@code content}. */
    record Replace(Pattern pattern, String content) implements Normalizer {
        @Override
        public String normalize(String text) {
            return pattern.matcher(text).replaceAll(Matcher.quoteReplacement(content));
        }
    }

    /** normalizers/unicode.rs NFC, NFD, NFKC, NFKD. */
    record UnicodeForm(java.text.Normalizer.Form form) implements Normalizer {
        @Override
        public String normalize(String text) {
            return java.text.Normalizer.normalize(text, form);
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
    }

    /** normalizers/byte_level.rs: the GPT-2 byte alphabet applied to the whole piece, without splitting. */
    record ByteLevel() implements Normalizer {
        @Override
        public String normalize(String text) {
            return ByteLevelAlphabet.encode(text);
        }
    }
}
