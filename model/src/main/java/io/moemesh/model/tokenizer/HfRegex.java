package io.moemesh.model.tokenizer;

import io.moemesh.model.ModelFormatException;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Compiles the regular expressions of a tokenizer.json, written for Oniguruma (HF's {@code SysRegex}), into
 * {@link Pattern}s that match the same text: {@link OnigurumaRegex} rewrites what the two engines read differently
 * and refuses what it cannot rewrite exactly, so a file either loads with HF's matches or fails naming the
 * construct. With {@link Pattern#UNICODE_CHARACTER_CLASS}, Java's {@code \s}, {@code \d}, {@code \p{L}},
 * {@code \p{N}} and the POSIX classes are Oniguruma's; look-ahead, look-behind, possessive repeats and
 * leftmost-first alternation behave the same.
 */
final class HfRegex {
    private HfRegex() {
    }

    /**
     * @param where how error messages name the regex, e.g. its JSON path
     * @throws ModelFormatException naming the regex and the construct, if it cannot be reproduced exactly
     */
    static Pattern compile(String regex, String where) {
        String java;
        try {
            java = OnigurumaRegex.translate(regex);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(where + ": regex \"" + regex + "\" is not supported: it "
                    + e.getMessage(), e);
        }
        try {
            return Pattern.compile(java, OnigurumaRegex.FLAGS);
        } catch (PatternSyntaxException e) {
            throw new ModelFormatException(where + ": regex \"" + regex + "\" is not supported: "
                    + e.getDescription());
        }
    }

    static Pattern literal(String text) {
        return Pattern.compile(Pattern.quote(text));
    }
}
