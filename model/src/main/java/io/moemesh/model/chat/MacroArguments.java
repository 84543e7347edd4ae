package io.moemesh.model.chat;

import java.util.ArrayList;
import java.util.List;

/**
 * A macro's arguments ({@code a, b=default, ...}, the text between the parentheses of its signature) as Jinja reads
 * them and as Jinjava's MacroTag reads them, for {@link TemplateCheck} to refuse a signature they read differently.
 * Each argument is {@code {name, default}}, the default null when there is none.
 */
final class MacroArguments {
    private MacroArguments() {
    }

    /** Jinja's: split at the commas outside strings and brackets. */
    static List<String[]> jinja(String args) {
        List<String[]> out = new ArrayList<>();
        int depth = 0;
        int from = 0;
        for (int i = 0; i < args.length(); i++) {
            char c = args.charAt(i);
            if (c == '\'' || c == '"') {
                i = stringEnd(args, i);
            } else if (c == '[' || c == '{' || c == '(') {
                depth++;
            } else if (c == ']' || c == '}' || c == ')') {
                depth--;
            } else if (c == ',' && depth == 0) {
                add(out, args.substring(from, i));
                from = i + 1;
            }
        }
        add(out, args.substring(from));
        return out;
    }

    /**
     * MacroTag's ({@code populateArgNames}): split at every comma, pieces trimmed and empty ones dropped; a default
     * that starts with '[' and does not end with ']' is joined with the following pieces by ", " until one does.
     */
    static List<String[]> jinjava(String args) {
        List<String> pieces = pieces(args);
        List<String[]> out = new ArrayList<>();
        for (int i = 0; i < pieces.size(); i++) {
            String arg = pieces.get(i);
            int eq = arg.indexOf('=');
            if (eq < 0) {
                out.add(new String[]{arg, null});
                continue;
            }
            StringBuilder value = new StringBuilder(arg.substring(eq + 1).strip());
            if (value.toString().startsWith("[") && !value.toString().endsWith("]")) {
                while (i + 1 < pieces.size() && !value.toString().endsWith("]")) {
                    value.append(", ").append(pieces.get(++i));
                }
            }
            out.add(new String[]{arg.substring(0, eq).strip(), value.toString()});
        }
        return out;
    }

    /**
     * Whether both read the same arguments with the same defaults: the same names, and each default the same but
     * for the spaces around its commas (MacroTag rejoins them with ", "), with no comma inside a string, where
     * that would change the value.
     */
    static boolean readAlike(List<String[]> jinja, List<String[]> jinjava) {
        if (jinja.size() != jinjava.size()) {
            return false;
        }
        for (int i = 0; i < jinja.size(); i++) {
            String[] a = jinja.get(i);
            String[] b = jinjava.get(i);
            if (!a[0].equals(b[0]) || (a[1] == null) != (b[1] == null)) {
                return false;
            }
            if (a[1] != null && (!String.join(", ", pieces(a[1])).equals(b[1]) || commaInString(a[1]))) {
                return false;
            }
        }
        return true;
    }

    private static void add(List<String[]> out, String arg) {
        String a = arg.strip();
        if (a.isEmpty()) {
            return;
        }
        int eq = equalsOutsideStrings(a);
        out.add(eq < 0 ? new String[]{a, null} : new String[]{a.substring(0, eq).strip(), a.substring(eq + 1).strip()});
    }

    private static int equalsOutsideStrings(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\'' || c == '"') {
                i = stringEnd(s, i);
            } else if (c == '=') {
                return i;
            }
        }
        return -1;
    }

    private static List<String> pieces(String s) {
        List<String> out = new ArrayList<>();
        for (String p : s.split(",", -1)) {
            if (!p.strip().isEmpty()) {
                out.add(p.strip());
            }
        }
        return out;
    }

    private static boolean commaInString(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\'' || c == '"') {
                int end = stringEnd(s, i);
                for (int j = i + 1; j < end; j++) {
                    if (s.charAt(j) == '\\') {
                        j++; // an escaped character, a comma too, is not one
                    } else if (s.charAt(j) == ',') {
                        return true;
                    }
                }
                i = end;
            }
        }
        return false;
    }

    /**
     * The index of the quote that closes the string opened at {@code open} (a backslash escapes the next character),
     * or {@code s.length()} when it is not closed.
     */
    private static int stringEnd(String s, int open) {
        char quote = s.charAt(open);
        for (int i = open + 1; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\') {
                i++;
            } else if (c == quote) {
                return i;
            }
        }
        return s.length();
    }
}
