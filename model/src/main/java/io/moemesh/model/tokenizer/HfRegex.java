package io.moemesh.model.tokenizer;

import io.moemesh.model.ModelFormatException;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Compiles the regular expressions of a tokenizer.json, written for Oniguruma (HF's {@code SysRegex}), into
 * {@link Pattern}s that match the same text.
 *
 * <p>The differences that matter for published tokenizers: Oniguruma's {@code \s}, {@code \w}, {@code \d} and
 * case-insensitive groups are Unicode-aware, while Java's are ASCII-only unless
 * {@link Pattern#UNICODE_CHARACTER_CLASS} is set (with it, {@code \s} is exactly Unicode White_Space, like
 * Oniguruma's). {@code \p{L}}, {@code \p{N}}, look-ahead and leftmost-first alternation behave the same.
 * Oniguruma accepts bare script names such as {@code \p{Han}}; Java wants {@code \p{IsHan}}, so those are
 * rewritten.
 */
final class HfRegex {
    private static final Pattern BARE_PROPERTY = Pattern.compile("\\\\([pP])\\{(\\^?)([A-Za-z_]+)}");

    private HfRegex() {
    }

    static Pattern compile(String regex, String where) {
        try {
            return Pattern.compile(regex, Pattern.UNICODE_CHARACTER_CLASS);
        } catch (PatternSyntaxException first) {
            String rewritten = rewriteScriptNames(regex);
            if (!rewritten.equals(regex)) {
                try {
                    return Pattern.compile(rewritten, Pattern.UNICODE_CHARACTER_CLASS);
                } catch (PatternSyntaxException ignored) {
                    // fall through to report the original error
                }
            }
            throw new ModelFormatException(where + ": regex \"" + regex + "\" is not supported: "
                    + first.getDescription());
        }
    }

    static Pattern literal(String text) {
        return Pattern.compile(Pattern.quote(text));
    }

    /** {@code \p{Han}} → {@code \p{IsHan}} for names Java does not know as a category or block. */
    private static String rewriteScriptNames(String regex) {
        var m = BARE_PROPERTY.matcher(regex);
        StringBuilder out = new StringBuilder();
        while (m.find()) {
            String name = m.group(3);
            String replacement = m.group(0);
            if (!knownToJava(name)) {
                String negate = m.group(2).isEmpty() ? m.group(1) : (m.group(1).equals("p") ? "P" : "p");
                replacement = "\\" + negate + "{Is" + name + "}";
            }
            m.appendReplacement(out, java.util.regex.Matcher.quoteReplacement(replacement));
        }
        m.appendTail(out);
        return out.toString();
    }

    private static boolean knownToJava(String name) {
        try {
            Pattern.compile("\\p{" + name + "}");
            return true;
        } catch (PatternSyntaxException e) {
            return false;
        }
    }
}
