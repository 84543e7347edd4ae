package io.moemesh.model.chat;

import java.util.LinkedHashSet;
import java.util.Set;

/**
 * Lists the filter names a template applies ({@code x | name}, {@code {% filter name %}}). Jinja rejects unknown
 * filters when it compiles a template; Jinjava silently renders them as nothing, so {@link ChatTemplate} checks
 * the names itself. A light lexer: it only needs to skip comments, raw blocks and string literals.
 */
final class FilterNames {
    private FilterNames() {
    }

    static Set<String> in(String template) {
        Set<String> names = new LinkedHashSet<>();
        int i = 0;
        int n = template.length();
        while (i < n - 1) {
            if (template.startsWith("{#", i)) {
                int end = template.indexOf("#}", i + 2);
                i = end < 0 ? n : end + 2;
            } else if (template.startsWith("{{", i) || template.startsWith("{%", i)) {
                boolean statement = template.charAt(i + 1) == '%';
                int end = scanTag(template, i + 2, statement ? "%}" : "}}", names);
                if (statement && isRawStart(template.substring(i + 2, Math.max(i + 2, end - 2)))) {
                    int endRaw = template.indexOf("endraw", end);
                    int close = endRaw < 0 ? -1 : template.indexOf("%}", endRaw);
                    end = close < 0 ? n : close + 2;
                }
                i = end;
            } else {
                i++;
            }
        }
        return names;
    }

    private static boolean isRawStart(String inner) {
        return inner.replace("-", "").replace("+", "").strip().equals("raw");
    }

    /** Scans one tag from {@code from}, collecting filter names; returns the index after its closing delimiter. */
    private static int scanTag(String s, int from, String close, Set<String> names) {
        int i = from;
        int n = s.length();
        String first = firstWord(s, from);
        if (close.equals("%}") && first.equals("filter")) {
            String name = identifierAt(s, skipSpaces(s, s.indexOf("filter", from) + "filter".length()));
            if (!name.isEmpty()) {
                names.add(name);
            }
        }
        while (i < n) {
            char c = s.charAt(i);
            if (c == '\'' || c == '"') {
                i++;
                while (i < n && s.charAt(i) != c) {
                    i += s.charAt(i) == '\\' ? 2 : 1;
                }
                i++;
            } else if (s.startsWith(close, i)) {
                return i + close.length();
            } else if (c == '|') {
                String name = identifierAt(s, skipSpaces(s, i + 1));
                if (!name.isEmpty()) {
                    names.add(name);
                }
                i++;
            } else {
                i++;
            }
        }
        return n;
    }

    private static String firstWord(String s, int from) {
        int i = skipSpaces(s, from);
        if (i < s.length() && (s.charAt(i) == '-' || s.charAt(i) == '+')) {
            i = skipSpaces(s, i + 1);
        }
        return identifierAt(s, i);
    }

    private static int skipSpaces(String s, int i) {
        while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
            i++;
        }
        return i;
    }

    private static String identifierAt(String s, int i) {
        int j = i;
        while (j < s.length() && (Character.isLetterOrDigit(s.charAt(j)) || s.charAt(j) == '_')) {
            j++;
        }
        return j > i && !Character.isDigit(s.charAt(i)) ? s.substring(i, j) : "";
    }
}
