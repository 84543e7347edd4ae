package io.moemesh.model.chat;

import com.hubspot.jinjava.el.ext.ExtendedScanner;
import jinjava.de.odysseus.el.tree.impl.Scanner.ScanException;
import jinjava.de.odysseus.el.tree.impl.Scanner.Symbol;
import jinjava.de.odysseus.el.tree.impl.Scanner.Token;

/**
 * Jinjava's scanner with Python's string literals: Jinja's lexer decodes a literal with the unicode-escape
 * codec, so {@code \a \b \f \n \r \t \v \\ \' \"}, octal {@code \ooo}, {@code \xhh}, {@code \\uhhhh},
 * {@code \\Uhhhhhhhh}, {@code \N{name}} and a backslash before a line break (which joins the lines) are
 * escapes, and any other backslash stays in the string. A malformed escape is a syntax error, as in Jinja; so is an
 * escape of a surrogate code point (d800-dfff), which Python keeps as a lone surrogate that no tokenizer accepts.
 */
final class PythonScanner extends ExtendedScanner {
    PythonScanner(String input) {
        super(input);
    }

    @Override
    protected Token nextString() throws ScanException {
        builder.setLength(0);
        String in = getInput();
        int start = getPosition();
        char quote = in.charAt(start);
        int i = start + 1;
        while (i < in.length()) {
            char c = in.charAt(i++);
            if (c == quote) {
                return token(Symbol.STRING, builder.toString(), i - start);
            }
            if (c != '\\') {
                builder.append(c);
                continue;
            }
            if (i == in.length()) {
                break;
            }
            char e = in.charAt(i++);
            switch (e) {
                case '\n' -> { }
                case '\\', '\'', '"' -> builder.append(e);
                case 'a' -> builder.append('\u0007');
                case 'b' -> builder.append('\b');
                case 'f' -> builder.append('\f');
                case 'n' -> builder.append('\n');
                case 'r' -> builder.append('\r');
                case 't' -> builder.append('\t');
                case 'v' -> builder.append('\u000b');
                case 'x' -> i = hex(in, i, 2, start);
                case 'u' -> i = hex(in, i, 4, start);
                case 'U' -> i = hex(in, i, 8, start);
                case 'N' -> i = named(in, i, start);
                default -> {
                    if (e >= '0' && e <= '7') {
                        int value = e - '0';
                        for (int n = 1; n < 3 && i < in.length() && in.charAt(i) >= '0' && in.charAt(i) <= '7';
                             n++) {
                            value = value * 8 + in.charAt(i++) - '0';
                        }
                        builder.append((char) value);
                    } else {
                        builder.append('\\').append(e);
                    }
                }
            }
        }
        throw new ScanException(start, "unterminated string", String.valueOf(quote));
    }

    /** {@code digits} hex digits from {@code i}: the code point they spell, appended. */
    private int hex(String in, int i, int digits, int start) throws ScanException {
        int end = i + digits;
        if (end > in.length() || !in.substring(i, end).chars().allMatch(c -> Character.digit(c, 16) >= 0)) {
            throw new ScanException(start, "a truncated \\" + in.charAt(i - 1) + " escape",
                    digits + " hex digits");
        }
        long cp = Long.parseLong(in.substring(i, end), 16);
        if (cp > Character.MAX_CODE_POINT) {
            throw new ScanException(start, "an illegal Unicode character \\" + in.substring(i - 1, end),
                    "a code point up to 10ffff");
        }
        if (cp >= Character.MIN_SURROGATE && cp <= Character.MAX_SURROGATE) {
            // Python keeps each such escape as a lone surrogate ('\ud83d\ude00' is two of them, not an emoji):
            // text no UTF-8 encoder or tokenizer accepts, which would fail every render that reaches it
            throw new ScanException(start, "a surrogate escape \\" + in.substring(i - 1, end) + " (Python keeps it "
                    + "as a lone surrogate, which no tokenizer accepts)", "a code point outside d800-dfff");
        }
        builder.appendCodePoint((int) cp);
        return end;
    }

    /** {@code {NAME}} from {@code i}: the character of that Unicode name, appended. */
    private int named(String in, int i, int start) throws ScanException {
        int close = in.indexOf('}', i);
        if (i >= in.length() || in.charAt(i) != '{' || close < 0) {
            throw new ScanException(start, "a malformed \\N character escape", "\\N{NAME}");
        }
        try {
            builder.appendCodePoint(Character.codePointOf(in.substring(i + 1, close)));
        } catch (IllegalArgumentException e) {
            throw new ScanException(start, "an unknown Unicode character name \\N" + in.substring(i, close + 1),
                    "a Unicode character name");
        }
        return close + 1;
    }
}
