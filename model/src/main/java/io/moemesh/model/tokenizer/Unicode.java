package io.moemesh.model.tokenizer;

/**
 * Character classes as the Rust side of Hugging Face {@code tokenizers} sees them. Java's own
 * {@link Character#isWhitespace} is not Unicode {@code White_Space} (it omits U+00A0, U+2007, U+202F and adds
 * U+001C..U+001F), so the predicates HF uses ({@code char::is_whitespace}, regex {@code \s} and {@code \w}) are
 * spelled out here.
 */
final class Unicode {
    private Unicode() {
    }

    /** Unicode {@code White_Space}: Rust's {@code char::is_whitespace} and the {@code \s} of its regex engines. */
    static boolean isWhiteSpace(int cp) {
        return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680
                || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F
                || cp == 0x3000;
    }

    /**
     * Rust regex {@code \w} (UTS#18 word character): Alphabetic, marks, decimal digits, connector punctuation and
     * Join_Control. Used for the {@code single_word} rule of added tokens.
     */
    static boolean isWordChar(int cp) {
        if (Character.isAlphabetic(cp) || cp == 0x200C || cp == 0x200D) {
            return true;
        }
        return switch (Character.getType(cp)) {
            case Character.NON_SPACING_MARK, Character.ENCLOSING_MARK, Character.COMBINING_SPACING_MARK,
                 Character.DECIMAL_DIGIT_NUMBER, Character.CONNECTOR_PUNCTUATION -> true;
            default -> false;
        };
    }
}
