package io.moemesh.model.chat;

import java.beans.FeatureDescriptor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;
import java.util.regex.Pattern;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

/**
 * The Python {@code str} methods chat templates call ({@code content.strip()}, {@code .startswith(...)},
 * {@code .split(...)}, ...). In Jinja they are native; Jinjava only offers Java's String methods, so a template
 * such as Qwen3's would fail with "Cannot find method startswith". Resolved before Jinjava's own resolvers. Also
 * {@code dict.get}, which gives None (not Undefined) for an absent key, and attributes of None, which are
 * Undefined as in Jinja (no "unknown property" error: {@link ChatTemplate} fails on those); indexing a string by
 * code point, and any other attribute of a string than its methods, which is Undefined.
 */
final class PythonStringMethods extends ELResolver {
    private static final Pattern INDEX = Pattern.compile("-?[0-9]{1,18}");

    @Override
    public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
        if (!(method instanceof String name)) {
            return null;
        }
        Object[] p = params == null ? new Object[0] : params;
        Object result = null;
        if (base instanceof String s) {
            result = call(s, name, p);
        } else if (base instanceof Map<?, ?> m && name.equals("get") && (p.length == 1 || p.length == 2)) {
            // dict.get(key[, default]): None when absent, not Jinjava's null (= Undefined)
            result = m.containsKey(p[0]) ? m.get(p[0]) : p.length == 2 ? p[1] : PyNone.NONE;
            if (result == null) {
                context.setPropertyResolved(true);
                return null;
            }
        }
        if (result != null) {
            context.setPropertyResolved(true);
        }
        return result;
    }

    private static Object call(String s, String name, Object[] p) {
        return switch (name) {
            case "startswith" -> p.length >= 1 && p.length <= 3 ? tailMatch(s, p, true) : null;
            case "endswith" -> p.length >= 1 && p.length <= 3 ? tailMatch(s, p, false) : null;
            case "strip" -> p.length <= 1 ? strip(s, arg(p), true, true) : null;
            case "lstrip" -> p.length <= 1 ? strip(s, arg(p), true, false) : null;
            case "rstrip" -> p.length <= 1 ? strip(s, arg(p), false, true) : null;
            case "split" -> p.length <= 2 ? split(s, arg(p), p.length == 2 ? ((Number) p[1]).intValue() : -1) : null;
            case "upper" -> p.length == 0 ? s.toUpperCase(Locale.ROOT) : null;
            case "lower" -> p.length == 0 ? s.toLowerCase(Locale.ROOT) : null;
            case "title" -> p.length == 0 ? title(s) : null;
            case "capitalize" -> p.length == 0 ? capitalize(s) : null;
            case "replace" -> p.length == 2 ? s.replace(String.valueOf(p[0]), String.valueOf(p[1])) : null;
            case "find" -> p.length == 1 ? s.indexOf(String.valueOf(p[0])) : null;
            case "count" -> p.length == 1 ? count(s, String.valueOf(p[0])) : null;
            case "join" -> p.length == 1 && p[0] instanceof Collection<?> c
                    ? String.join(s, c.stream().map(String::valueOf).toList()) : null;
            default -> null;
        };
    }

    /** A Python str method, which Jinja would give as a bound method (not rendered here: left to fail). */
    private static boolean isMethod(String name) {
        return METHODS_OF_STR.contains(name);
    }

    /** Python 3's str methods (dir(str) without dunders): an attribute of a string is one of these or Undefined. */
    private static final Set<String> METHODS_OF_STR = Set.of("capitalize", "casefold", "center",
            "count", "encode", "endswith", "expandtabs", "find", "format", "format_map", "index", "isalnum", "isalpha",
            "isascii", "isdecimal", "isdigit", "isidentifier", "islower", "isnumeric", "isprintable", "isspace",
            "istitle", "isupper", "join", "ljust", "lower", "lstrip", "maketrans", "partition", "removeprefix",
            "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit", "rstrip", "split",
            "splitlines", "startswith", "strip", "swapcase", "title", "translate", "upper", "zfill");

    private static String arg(Object[] p) {
        return p.length == 0 || p[0] == null || p[0] instanceof PyNone ? null : String.valueOf(p[0]);
    }

    /**
     * {@code s.startswith(prefix[, start[, end]])} / {@code endswith}, prefix a string or a tuple of them: CPython's
     * unicodeobject.c {@code tailmatch} on {@code s[start:end]} (indices in code points, negative ones counted from
     * the end, clamped; None means absent), so {@code 'abc'.startswith('', 4)} is False.
     */
    private static boolean tailMatch(String s, Object[] p, boolean start) {
        int[] cps = s.codePoints().toArray();
        int len = cps.length;
        int from = p.length > 1 && isIndex(p[1]) ? ((Number) p[1]).intValue() : 0;
        int to = p.length > 2 && isIndex(p[2]) ? ((Number) p[2]).intValue() : len;
        if (to > len) {
            to = len;
        } else if (to < 0) {
            to = Math.max(0, to + len);
        }
        if (from < 0) {
            from = Math.max(0, from + len);
        }
        int lo = from;
        int hi = to;
        return anyMatch(p[0], affix -> {
            int[] a = affix.codePoints().toArray();
            if (hi - a.length < lo) {
                return false;
            }
            int at = start ? lo : hi - a.length;
            return Arrays.equals(cps, at, at + a.length, a, 0, a.length);
        });
    }

    private static boolean isIndex(Object o) {
        return o instanceof Number && !(o instanceof Double || o instanceof Float);
    }

    /** {@code s.startswith("x")} or {@code s.startswith(("x", "y"))}. */
    private static boolean anyMatch(Object arg, Predicate<String> test) {
        if (arg instanceof Collection<?> c) {
            return c.stream().anyMatch(o -> test.test(String.valueOf(o)));
        }
        return test.test(String.valueOf(arg));
    }

    /**
     * Python strip, by code point: whitespace as {@code str.isspace} when {@code chars} is None, else any of
     * {@code chars}. Also the {@code trim} filter's (jinja2 {@code do_trim}).
     */
    static String strip(String s, String chars, boolean left, boolean right) {
        int start = 0;
        int end = s.length();
        while (left && start < end && strippable(s.codePointAt(start), chars)) {
            start += Character.charCount(s.codePointAt(start));
        }
        while (right && end > start && strippable(s.codePointBefore(end), chars)) {
            end -= Character.charCount(s.codePointBefore(end));
        }
        return s.substring(start, end);
    }

    /**
     * Python's {@code str.isspace} (bidirectional class WS, B or S, or category Zs): Java's isWhitespace and
     * isSpaceChar together, plus U+0085 (NEL), which Java counts as a control character only.
     */
    private static boolean strippable(int c, String chars) {
        if (chars != null) {
            return chars.indexOf(c) >= 0;
        }
        return Character.isWhitespace(c) || Character.isSpaceChar(c) || c == 0x85;
    }

    /** Python split: on runs of whitespace (dropping empty ends) when {@code sep} is None, else on {@code sep}. */
    private static List<String> split(String s, String sep, int maxSplit) {
        List<String> out = new ArrayList<>();
        if (sep == null) {
            String rest = strip(s, null, true, false);
            while (!rest.isEmpty()) {
                if (maxSplit >= 0 && out.size() == maxSplit) {
                    out.add(rest);
                    break;
                }
                int i = 0;
                while (i < rest.length() && !strippable(rest.charAt(i), null)) {
                    i++;
                }
                out.add(rest.substring(0, i));
                rest = strip(rest.substring(i), null, true, false);
            }
            return out;
        }
        if (sep.isEmpty()) {
            throw new IllegalArgumentException("empty separator");
        }
        int from = 0;
        int at;
        while ((maxSplit < 0 || out.size() < maxSplit) && (at = s.indexOf(sep, from)) >= 0) {
            out.add(s.substring(from, at));
            from = at + sep.length();
        }
        out.add(s.substring(from));
        return out;
    }

    private static String title(String s) {
        StringBuilder out = new StringBuilder(s.length());
        boolean previousCased = false;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            out.append(previousCased ? Character.toLowerCase(c) : Character.toUpperCase(c));
            previousCased = Character.isLetter(c);
        }
        return out.toString();
    }

    private static String capitalize(String s) {
        return s.isEmpty() ? s : s.substring(0, 1).toUpperCase(Locale.ROOT) + s.substring(1).toLowerCase(Locale.ROOT);
    }

    private static int count(String s, String sub) {
        if (sub.isEmpty()) {
            return s.length() + 1;
        }
        int n = 0;
        for (int i = s.indexOf(sub); i >= 0; i = s.indexOf(sub, i + sub.length())) {
            n++;
        }
        return n;
    }

    @Override
    public Object getValue(ELContext context, Object base, Object property) {
        if (base instanceof PyNone) {
            context.setPropertyResolved(true); // None.x: jinja2 sandbox getattr gives Undefined
            return null;
        }
        if (base instanceof String s) {
            // s[i] (Jinjava passes the index as its decimal string): the i-th code point, negative from the end;
            // out of range is Undefined (Jinja's getitem)
            String key = String.valueOf(property);
            if (INDEX.matcher(key).matches()) {
                context.setPropertyResolved(true);
                int count = s.codePointCount(0, s.length());
                long i = Long.parseLong(key);
                i = i < 0 ? i + count : i;
                return i < 0 || i >= count ? null : Character.toString(s.codePointAt(s.offsetByCodePoints(0, (int) i)));
            }
            if (property instanceof String name && !isMethod(name)) {
                context.setPropertyResolved(true); // no attribute of that name: Undefined, as Jinja's getattr gives
                return null;
            }
        }
        return null;
    }

    @Override
    public Class<?> getType(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public void setValue(ELContext context, Object base, Object property, Object value) {
        // read-only
    }

    @Override
    public boolean isReadOnly(ELContext context, Object base, Object property) {
        return true;
    }

    @Override
    public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
        return null;
    }

    @Override
    public Class<?> getCommonPropertyType(ELContext context, Object base) {
        return base instanceof String ? Object.class : null;
    }
}
