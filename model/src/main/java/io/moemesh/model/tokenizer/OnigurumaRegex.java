package io.moemesh.model.tokenizer;

import java.util.ArrayDeque;
import java.util.BitSet;
import java.util.Deque;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Rewrites a regex written for Oniguruma (HF's {@code SysRegex}: rust-onig's default syntax, ONIG_SYNTAX_ONIGURUMA,
 * no options) into a {@link Pattern} source that, compiled with {@link #FLAGS}, matches the same text. A construct
 * that the two engines read differently is rewritten when the rewrite is exact, and refused otherwise, with an
 * {@link IllegalArgumentException} naming it. Every class below was compared with tokenizers 0.23.2 on all code
 * points, and every rewrite on texts built to tell the readings apart (HfRegexTest).
 *
 * <p>What differs, and what is done:
 * <ul>
 *   <li>{@code \w \W \b \B \p{Word} [:word:]}: Oniguruma's word characters are not Java's (Java adds U+200C and
 *       U+200D; outside a class, Oniguruma adds ²³¹¼½¾): spelled out.</li>
 *   <li>{@code ^ $}: line anchors in Oniguruma (after / before any "\n"), input anchors in Java: spelled out with
 *       look-around. {@code .} and {@code \Z}: Oniguruma's line end is "\n" alone, hence {@link Pattern#UNIX_LINES}.
 *       </li>
 *   <li>{@code (?m)} is Oniguruma's dot-all, Java's {@code (?s)}; {@code (?s)} and {@code (?x)} are refused (the
 *       former by Oniguruma itself, the latter reads white space in classes differently).</li>
 *   <li>{@code \h \H \v}: hex digit, non-hex digit, U+000B in Oniguruma (Java: horizontal, vertical white space).
 *       {@code \p{XDigit} \p{Hex_Digit} [:xdigit:] [:punct:]}: Oniguruma's sets, spelled out. {@code \p{^X}}:
 *       Oniguruma's negation.</li>
 *   <li>{@code \0oo}: at most 2 more octal digits in Oniguruma (3 in Java): rewritten. {@code \1}..{@code \9},
 *       {@code \G \X \Q \E \c \K \N \O \y \Y \g \o}, {@code x{n}?}, {@code x{n}+}, {@code x{n,m}+}: refused (a
 *       back-reference or octal, a match start, a grapheme, a quote, a control, and repeats that Oniguruma reads as
 *       an optional or repeated interval where Java reads a lazy or possessive one).</li>
 *   <li>{@code \p{...}}: only names checked against tokenizers: the general categories but Cn and Cs (whose
 *       Oniguruma sets differ), by short or long name, the POSIX classes, the scripts and their aliases but Unknown,
 *       and a few binary properties; in any case and with spaces, hyphens and underscores anywhere, as Oniguruma
 *       ignores them ({@code \p{L_u}} is {@code \p{Lu}}; {@link OnigurumaPropertyNames#key}).</li>
 *   <li>Case-insensitive groups: Oniguruma also matches "ss" to "ß", "st" to "ﬆ", "j" + U+030C to "ǰ", keeps "i"
 *       apart from "İ" and "ı", and does not fold {@code \p{Lu}}; Java does the opposite. So such a group refuses
 *       "i", letters outside ASCII, combining marks, the pairs ss, st, ff, fi, fl (also through a one-character
 *       class, which Oniguruma reads as a literal), {@code \p}, {@code \x}, backslash-u, and classes but those of
 *       literal ASCII characters and ranges without i, I, k or K; the rest (each other ASCII letter was compared on
 *       all code points, and a class of it matches what it matches) is enough for the contractions
 *       {@code (?i:'s|'t|'re|'ve|'m|'ll|'d)} and {@code (?i:[sdmt]|ll|ve|re)} of the published tokenizers.</li>
 * </ul>
 */
final class OnigurumaRegex {
    static final int FLAGS = Pattern.UNICODE_CHARACTER_CLASS | Pattern.UNIX_LINES;

    /**
     * Oniguruma's word characters in a class ({@code [\w]}, {@code [:word:]}): Java's Unicode {@code \w} less the
     * joiners U+200C and U+200D.
     */
    static final String CLASS_WORD = "\\p{IsAlphabetic}\\p{M}\\p{Nd}\\p{Pc}";
    /** Oniguruma's {@code \w} and {@code \b} outside a class: its Latin-1 table also counts ²³¹¼½¾. */
    static final String WORD = CLASS_WORD + "\\x{B2}\\x{B3}\\x{B9}\\x{BC}-\\x{BE}";
    private static final String BOUNDARY = "(?:(?<=[" + WORD + "])(?![" + WORD + "])|(?<![" + WORD + "])(?=["
            + WORD + "]))";
    private static final String NON_BOUNDARY = "(?:(?<=[" + WORD + "])(?=[" + WORD + "])|(?<![" + WORD + "])(?!["
            + WORD + "]))";
    private static final String HEX = "0-9A-Fa-f";
    /** The Unicode Hex_Digit property. */
    private static final String HEX_DIGIT = "0-9A-Fa-f\\x{FF10}-\\x{FF19}\\x{FF21}-\\x{FF26}\\x{FF41}-\\x{FF46}";
    /** Oniguruma's \R: one line break, atomic. */
    private static final String LINE_BREAK = "(?>\\r\\n|[\\n\\x0B\\f\\r\\x{85}\\x{2028}\\x{2029}])";
    private static final String LINE_START = "(?:\\A|(?<=\\n)(?!\\z))";
    private static final String LINE_END = "(?=\\n|\\z)";

    /** Bodies of Java classes for Oniguruma names Java lacks or reads otherwise. */
    private static final Map<String, String> SPELLED_OUT = Map.of("XDigit", HEX, "Hex_Digit",
            HEX_DIGIT, "Assigned", "\\P{Cn}", "Any", "\\x{0}-\\x{10FFFF}");
    private static final Map<String, String> POSIX_BRACKETS = Map.ofEntries(Map.entry("alnum", "\\p{Alnum}"),
            Map.entry("alpha", "\\p{Alpha}"), Map.entry("ascii", "\\p{ASCII}"), Map.entry("blank", "\\p{Blank}"),
            Map.entry("cntrl", "\\p{Cntrl}"), Map.entry("digit", "\\p{Digit}"), Map.entry("graph", "\\p{Graph}"),
            Map.entry("lower", "\\p{Lower}"), Map.entry("print", "\\p{Print}"), Map.entry("punct", "\\p{P}\\p{S}"),
            Map.entry("space", "\\p{Space}"), Map.entry("upper", "\\p{Upper}"), Map.entry("xdigit", HEX),
            Map.entry("word", CLASS_WORD));
    private static final Map<Character, String> REFUSED_ESCAPES = Map.ofEntries(
            Map.entry('G', "a search-start anchor"), Map.entry('X', "a grapheme cluster, whose rules differ"),
            Map.entry('Q', "a quote (Oniguruma has none)"), Map.entry('E', "a quote end (Oniguruma has none)"),
            Map.entry('c', "a control character, which Oniguruma and Java compute differently"),
            Map.entry('K', "keep"), Map.entry('N', "a non-newline"), Map.entry('O', "any character"),
            Map.entry('y', "a text-segment boundary"), Map.entry('Y', "a text-segment non-boundary"),
            Map.entry('g', "a subexpression call"), Map.entry('o', "an octal code"),
            Map.entry('C', "a control character"), Map.entry('M', "a meta character"),
            Map.entry('V', "a literal V in Oniguruma, a non-vertical-space in Java"));
    private static final Pattern INTERVAL = Pattern.compile("\\{(\\d+)(,\\d*)?}");
    private static final Pattern POSIX_BRACKET = Pattern.compile("\\[:(\\^?)([a-z]+):]");
    private static final Pattern PROPERTY = Pattern.compile("\\{(\\^?)([^}]+)}");
    /** Letter pairs that Oniguruma's case folding also matches as one character (ß, ﬆ, ﬀ, ﬁ, ﬂ). */
    private static final Set<String> FOLDED_PAIRS = Set.of("ss", "st", "ff", "fi", "fl");

    private final String re;
    private final StringBuilder out = new StringBuilder();
    private final Deque<Boolean> enclosingCaseInsensitive = new ArrayDeque<>();
    private int pos;
    private boolean caseInsensitive;
    /** The ASCII letter just copied in a case-insensitive group, lower-cased, or 0. */
    private char previousLetter;

    private OnigurumaRegex(String re) {
        this.re = re;
    }

    /**
     * The Java pattern source for an Oniguruma regex.
     *
     * @throws IllegalArgumentException naming the construct, if the regex uses one Java would read differently
     */
    static String translate(String regex) {
        return new OnigurumaRegex(regex).run();
    }

    private String run() {
        while (pos < re.length()) {
            char c = re.charAt(pos);
            char letter = 0;
            switch (c) {
                case '\\' -> escape();
                case '[' -> {
                    if (caseInsensitive) {
                        letter = caseInsensitiveClass();
                    } else {
                        charClass();
                    }
                }
                case '(' -> group();
                case ')' -> {
                    pos++;
                    out.append(')');
                    caseInsensitive = enclosingCaseInsensitive.isEmpty() ? caseInsensitive
                            : enclosingCaseInsensitive.pop();
                }
                case '^' -> {
                    pos++;
                    out.append(LINE_START);
                }
                case '$' -> {
                    pos++;
                    out.append(LINE_END);
                }
                case '{' -> interval();
                default -> letter = literal();
            }
            previousLetter = letter;
        }
        return out.toString();
    }

    /** Copies one literal code point, checking it against case folding in a case-insensitive group. */
    private char literal() {
        int cp = re.codePointAt(pos);
        pos += Character.charCount(cp);
        out.appendCodePoint(cp);
        return checkFolding(cp);
    }

    /**
     * A class in a case-insensitive group ({@code (?i:[sdmt]|ll|ve|re)} of LLaDA and Ling): accepted when its
     * members are literal ASCII characters or ranges of them without i, I, k or K, which both engines fold alike
     * (s also to U+017F in both; i, k have other partners: İ, ı, U+212A). Java then reads it as Oniguruma does: no
     * escape, nested class, POSIX bracket or {@code &&}. Oniguruma turns a one-character class into a literal, so
     * that one is checked as a literal (after "s", {@code [s]} makes "ss", which also matches ß).
     *
     * @return what {@link #literal()} returns for a one-character class, else 0
     */
    private char caseInsensitiveClass() {
        int start = pos;
        pos++;
        boolean negated = pos < re.length() && re.charAt(pos) == '^';
        if (negated) {
            pos++;
        }
        BitSet members = new BitSet(128);
        boolean first = true;
        while (true) {
            if (pos >= re.length()) {
                throw refuse("an unclosed character class");
            }
            char c = re.charAt(pos);
            if (c == ']' && !first) {
                pos++;
                break;
            }
            first = false;
            int low = classMember(c);
            pos++;
            int high = low;
            if (pos + 1 < re.length() && re.charAt(pos) == '-' && re.charAt(pos + 1) != ']') {
                high = classMember(re.charAt(pos + 1));
                pos += 2;
                if (high < low) {
                    throw refuse("the range " + (char) low + "-" + (char) high + " (out of order)");
                }
            }
            for (int m = low; m <= high; m++) {
                if (m == 'i' || m == 'I' || m == 'k' || m == 'K') {
                    throw refuse("'" + (char) m + "' in a character class in a case-insensitive group (Oniguruma and"
                            + " Java fold it differently)");
                }
            }
            members.set(low, high + 1);
        }
        out.append(re, start, pos);
        return !negated && members.cardinality() == 1 ? checkFolding(members.nextSetBit(0)) : 0;
    }

    /** A character of a class in a case-insensitive group: a literal ASCII one that no engine reads specially. */
    private int classMember(char c) {
        if (c > 0x7F || c == '\\' || c == '[' || c == '&' && pos + 1 < re.length() && re.charAt(pos + 1) == '&') {
            throw refuse((c == '\\' ? "an escape" : c == '[' ? "a nested class or POSIX bracket" : c > 0x7F
                    ? "'" + c + "'" : "&&") + " in a character class in a case-insensitive group");
        }
        return c;
    }

    /** In a case-insensitive group, refuses a copied letter that the engines fold differently; else as literal(). */
    private char checkFolding(int cp) {
        if (!caseInsensitive || !Character.isLetter(cp) && !isMark(cp) && Character.toLowerCase(cp) == cp
                && Character.toUpperCase(cp) == cp) {
            return 0;
        }
        char lower = (char) Character.toLowerCase(cp);
        if (cp > 0x7F || lower == 'i') {
            throw refuse("'" + Character.toString(cp) + "' in a case-insensitive group (Oniguruma and Java fold it"
                    + " differently)");
        }
        if (previousLetter != 0 && FOLDED_PAIRS.contains("" + previousLetter + lower)) {
            throw refuse("\"" + previousLetter + lower + "\" in a case-insensitive group (Oniguruma also matches it"
                    + " as one ligature or ß, Java does not)");
        }
        return lower;
    }

    /** A combining mark: after a letter, Oniguruma's folding may match the pair as one character (ǰ, ẗ). */
    private static boolean isMark(int cp) {
        int type = Character.getType(cp);
        return type == Character.NON_SPACING_MARK || type == Character.COMBINING_SPACING_MARK
                || type == Character.ENCLOSING_MARK;
    }

    private void escape() {
        if (pos + 1 >= re.length()) {
            out.append('\\');
            pos++;
            return;
        }
        char e = re.charAt(pos + 1);
        pos += 2;
        switch (e) {
            case 'w' -> out.append('[').append(WORD).append(']');
            case 'W' -> out.append("[^").append(WORD).append(']');
            case 'b' -> {
                if (pos < re.length() && re.charAt(pos) == '{') {
                    throw refuse("\\b{");
                }
                out.append(BOUNDARY);
            }
            case 'B' -> out.append(NON_BOUNDARY);
            case 'h' -> out.append('[').append(HEX).append(']');
            case 'H' -> out.append("[^").append(HEX).append(']');
            case 'v' -> out.append("\\x0B");
            case 'R' -> out.append(LINE_BREAK);
            case 'p', 'P' -> {
                checkNotCaseInsensitive("\\" + e);
                out.append('[').append(property(e == 'P', false)).append(']');
            }
            case '0' -> out.append(octal());
            case 'x', 'u' -> {
                checkNotCaseInsensitive("\\" + e);
                out.append('\\').append(e);
                copyCodeDigits(e);
            }
            default -> escapeAsIs(e);
        }
    }

    /** An escape both engines read alike, or one refused; {@code e} is the character after the backslash. */
    private void escapeAsIs(char e) {
        if (e >= '1' && e <= '9') {
            throw refuse("\\" + e + " (a back-reference or an octal code, depending on the groups, in Oniguruma)");
        }
        String refused = REFUSED_ESCAPES.get(e);
        if (refused != null) {
            throw refuse("\\" + e + " (" + refused + ")");
        }
        if (caseInsensitive && Character.isLetter(e) && "dDsSwWtnrfeaAzZk".indexOf(e) < 0) {
            throw refuse("\\" + e + " in a case-insensitive group");
        }
        out.append('\\').append(e);
    }

    private void checkNotCaseInsensitive(String construct) {
        if (caseInsensitive) {
            throw refuse(construct + " in a case-insensitive group");
        }
    }

    /** The hex digits of {@code \xHH}, {@code \x{H...}} or backslash-u HHHH, copied as they are: read alike. */
    private void copyCodeDigits(char e) {
        if (e == 'x' && pos < re.length() && re.charAt(pos) == '{') {
            int close = re.indexOf('}', pos);
            int end = close < 0 ? re.length() : close + 1;
            out.append(re, pos, end);
            pos = end;
            return;
        }
        int max = e == 'x' ? 2 : 4;
        int start = pos;
        while (pos < re.length() && pos - start < max && Character.digit(re.charAt(pos), 16) >= 0) {
            pos++;
        }
        out.append(re, start, pos);
    }

    /** {@code \0} and at most two more octal digits (Java would take three). */
    private String octal() {
        int value = 0;
        for (int i = 0; i < 2 && pos < re.length() && re.charAt(pos) >= '0' && re.charAt(pos) <= '7'; i++) {
            value = value * 8 + (re.charAt(pos++) - '0');
        }
        return String.format("\\x{%X}", value);
    }

    /** {@code {n}}, {@code {n,}}, {@code {n,m}}: Java reads them alike unless a '?' or '+' follows. */
    private void interval() {
        Matcher m = INTERVAL.matcher(re).region(pos, re.length());
        if (!m.lookingAt()) {
            out.append('{');
            pos++;
            return;
        }
        out.append(m.group());
        pos = m.end();
        char next = pos < re.length() ? re.charAt(pos) : 0;
        if (m.group(2) == null && (next == '?' || next == '+')) {
            throw refuse(m.group() + next + " (Oniguruma reads an optional or repeated " + m.group() + ", Java a "
                    + (next == '?' ? "lazy" : "possessive") + " one)");
        }
        if (m.group(2) != null && next == '+') {
            throw refuse(m.group() + "+ (Oniguruma reads a repeated " + m.group() + ", Java a possessive one)");
        }
    }

    private void group() {
        pos++;
        enclosingCaseInsensitive.push(caseInsensitive);
        if (pos >= re.length() || re.charAt(pos) != '?') {
            out.append('(');
            return;
        }
        int start = pos + 1;
        int end = start;
        while (end < re.length() && (Character.isLetter(re.charAt(end)) || re.charAt(end) == '-')) {
            end++;
        }
        if (end == start || end >= re.length() || (re.charAt(end) != ':' && re.charAt(end) != ')')) {
            // (?:, (?=, (?!, (?>, (?<=, (?<!, (?<name>: read alike; anything else Java refuses or reads alike.
            out.append("(?");
            pos++;
            return;
        }
        StringBuilder options = new StringBuilder();
        boolean negative = false;
        Boolean ci = null;
        for (int i = start; i < end; i++) {
            char o = re.charAt(i);
            switch (o) {
                case '-' -> {
                    negative = true;
                    options.append('-');
                }
                case 'i' -> {
                    ci = !negative;
                    options.append('i');
                }
                // Oniguruma's (?m) is dot-all.
                case 'm' -> options.append('s');
                default -> throw refuse("the option (?" + o + ") (" + switch (o) {
                    case 's' -> "Oniguruma refuses it: its dot-all is (?m)";
                    case 'x' -> "Java's also skips white space in classes";
                    case 'W', 'D', 'S', 'P', 'I', 'L', 'y' -> "an Oniguruma option Java lacks";
                    default -> "a Java option Oniguruma refuses";
                } + ")");
            }
        }
        boolean scoped = re.charAt(end) == ':';
        out.append("(?").append(options).append(re.charAt(end));
        pos = end + 1;
        if (!scoped) {
            // (?i) applies to the rest of the enclosing group: it opened no group of its own.
            enclosingCaseInsensitive.pop();
        }
        if (ci != null) {
            caseInsensitive = ci;
        }
    }

    private void charClass() {
        out.append('[');
        pos++;
        if (pos < re.length() && re.charAt(pos) == '^') {
            out.append('^');
            pos++;
        }
        boolean first = true;
        while (pos < re.length()) {
            char c = re.charAt(pos);
            if (c == ']' && !first) {
                out.append(']');
                pos++;
                return;
            }
            first = false;
            if (c == '[') {
                Matcher posix = POSIX_BRACKET.matcher(re).region(pos, re.length());
                if (posix.lookingAt()) {
                    out.append(posixBracket(posix.group(2), !posix.group(1).isEmpty()));
                    pos = posix.end();
                } else {
                    charClass();
                }
            } else if (c == '\\' && pos + 1 < re.length()) {
                classEscape();
            } else {
                int cp = re.codePointAt(pos);
                out.appendCodePoint(cp);
                pos += Character.charCount(cp);
            }
        }
    }

    private void classEscape() {
        char e = re.charAt(pos + 1);
        pos += 2;
        switch (e) {
            case 'w' -> out.append(CLASS_WORD);
            case 'W' -> out.append("[^").append(CLASS_WORD).append(']');
            case 'h' -> out.append(HEX);
            case 'H' -> out.append("[^").append(HEX).append(']');
            case 'v' -> out.append("\\x0B");
            // In a class, Oniguruma's \b is a backspace.
            case 'b' -> out.append("\\x08");
            case 'p', 'P' -> out.append(property(e == 'P', true));
            case '0' -> out.append(octal());
            case 'x', 'u' -> {
                out.append('\\').append(e);
                copyCodeDigits(e);
            }
            case 'R', 'B' -> throw refuse("\\" + e + " in a character class");
            default -> escapeAsIs(e);
        }
    }

    private String posixBracket(String name, boolean negated) {
        String body = POSIX_BRACKETS.get(name);
        if (body == null) {
            throw refuse("[:" + name + ":] (not a POSIX bracket)");
        }
        return negated ? "[^" + body + "]" : body;
    }

    /** {@code \p{...}} / {@code \P{...}} at pos (after the p), as a piece of a Java class body. */
    private String property(boolean negatedEscape, boolean inClass) {
        Matcher m = PROPERTY.matcher(re).region(pos, re.length());
        if (!m.lookingAt()) {
            throw refuse("\\" + (negatedEscape ? "P" : "p") + " without a {name}");
        }
        pos = m.end();
        boolean negated = negatedEscape != !m.group(1).isEmpty();
        String name = OnigurumaPropertyNames.canonical(m.group(2));
        String body;
        if (OnigurumaPropertyNames.SAME.contains(name)) {
            body = null;
        } else if (OnigurumaPropertyNames.BINARY.contains(name)) {
            name = "Is" + name;
            body = null;
        } else if (name.equals("Word")) {
            body = inClass ? CLASS_WORD : WORD;
        } else if (SPELLED_OUT.containsKey(name)) {
            body = SPELLED_OUT.get(name);
        } else if (OnigurumaPropertyNames.script(name) != null) {
            name = "script=" + OnigurumaPropertyNames.script(name).name();
            body = null;
        } else {
            throw refuse("\\p{" + name + "} (not one of the properties checked against tokenizers: the general"
                    + " categories (short or long names) but Cn and Cs, the POSIX classes, Word, XDigit, Hex_Digit,"
                    + " Any, Assigned, the scripts and their aliases but Unknown, "
                    + String.join(", ", OnigurumaPropertyNames.BINARY.stream().sorted().toList()) + ")");
        }
        if (body == null) {
            return (negated ? "\\P{" : "\\p{") + name + "}";
        }
        return negated ? "[^" + body + "]" : body;
    }


    private IllegalArgumentException refuse(String construct) {
        return new IllegalArgumentException("uses " + construct + ", which Oniguruma (HF tokenizers) and Java read"
                + " differently");
    }
}
