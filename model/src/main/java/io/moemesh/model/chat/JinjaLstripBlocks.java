package io.moemesh.model.chat;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Jinja's {@code lstrip_blocks}, applied to the template source before Jinjava parses it. Jinjava's own
 * {@code lstripBlocks} is off (JinjaEnvironment): it stripped the blanks before a block tag also in the middle of a
 * line, so {@code {% if not loop.last %}, {% endif %}} lost its space. Jinja's rule (jinja2.lexer): the spaces and
 * tabs between the start of a line and a block tag {@code {%} or a comment {@code {#} are removed when nothing else
 * precedes the tag on that line; {@code {%+} / {@code {#+} keep them (the plus is removed here, as Jinjava does not
 * know it); {@code {%-} strips all whitespace before the tag anyway (left to Jinjava); expressions {@code {{ }}} are
 * never stripped. The body of {@code {% raw %}} is text (only the blanks before its {@code {% endraw %}} are
 * stripped, as Jinja does), and string literals inside tags are skipped, as Jinja's lexer reads them, so a
 * {@code "%}"} inside quotes does not end a tag. Only blanks and pluses are removed, never a line break, so the line
 * numbers of errors stay those of the source.
 */
final class JinjaLstripBlocks {
    private static final Pattern RAW = Pattern.compile("\\s*raw\\s*-?%}");
    private static final Pattern ENDRAW = Pattern.compile("\\{%[-+]?\\s*endraw\\s*[-+]?%}");

    private JinjaLstripBlocks() {
    }

    static String apply(String source) {
        StringBuilder out = new StringBuilder(source.length());
        int n = source.length();
        int i = 0;
        boolean inRaw = false;
        while (i < n) {
            char c = source.charAt(i);
            char next = i + 1 < n ? source.charAt(i + 1) : 0;
            if (c != '{' || (next != '%' && next != '#' && next != '{')) {
                out.append(c);
                i++;
                continue;
            }
            if (inRaw) {
                // inside raw only "{% endraw %}" is a tag
                Matcher end = ENDRAW.matcher(source).region(i, n);
                if (!end.lookingAt()) {
                    out.append(c);
                    i++;
                    continue;
                }
                i = openTag(source, i, out);
                out.append(source, i, end.end());
                i = end.end();
                inRaw = false;
                continue;
            }
            if (next == '{') {
                int end = tagEnd(source, i + 2, "}}");
                out.append(source, i, end);
                i = end;
                continue;
            }
            i = openTag(source, i, out);
            int end = next == '#' ? comment(source, i) : tagEnd(source, i, "%}");
            inRaw = next == '%' && RAW.matcher(source).region(i, end).matches();
            out.append(source, i, end);
            i = end;
        }
        return out.toString();
    }

    /**
     * Writes the opening "{%" or "{#" at {@code at} after Jinja's lstrip of the text before it, without a "+".
     *
     * @return the index after the opening and its sign ("-" is kept for Jinjava)
     */
    private static int openTag(String source, int at, StringBuilder out) {
        char sign = at + 2 < source.length() ? source.charAt(at + 2) : 0;
        if (sign != '-' && sign != '+') {
            int k = out.length();
            while (k > 0 && (out.charAt(k - 1) == ' ' || out.charAt(k - 1) == '\t')) {
                k--;
            }
            // Jinja reads "\r" and "\r\n" as line breaks too
            if (k == 0 || out.charAt(k - 1) == '\n' || out.charAt(k - 1) == '\r') {
                out.setLength(k);
            }
        }
        out.append(source, at, at + 2);
        return sign == '+' ? at + 3 : at + 2;
    }

    /** The index after the "#}" closing a comment whose text starts at {@code from} (the end if none). */
    private static int comment(String source, int from) {
        int close = source.indexOf("#}", from);
        return close < 0 ? source.length() : close + 2;
    }

    /**
     * The index after {@code close} ending a tag whose inside starts at {@code from}, skipping string literals (the
     * end of the source if it is not closed: Jinjava's parser reports that).
     */
    private static int tagEnd(String source, int from, String close) {
        int n = source.length();
        int i = from;
        while (i < n) {
            char c = source.charAt(i);
            if (c == '\'' || c == '"') {
                i++;
                while (i < n && source.charAt(i) != c) {
                    i += source.charAt(i) == '\\' ? 2 : 1;
                }
                i++;
            } else if (source.startsWith(close, i)) {
                return i + close.length();
            } else {
                i++;
            }
        }
        return n;
    }
}
