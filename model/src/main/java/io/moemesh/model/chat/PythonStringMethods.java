package io.moemesh.model.chat;

import java.beans.FeatureDescriptor;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

/**
 * The Python {@code str} methods chat templates call ({@code content.strip()}, {@code .startswith(...)},
 * {@code .split(...)}, ...). In Jinja they are native; Jinjava only offers Java's String methods, so a template
 * such as Qwen3's would fail with "Cannot find method startswith". Resolved before Jinjava's own resolvers.
 */
final class PythonStringMethods extends ELResolver {

    @Override
    public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
        if (!(base instanceof String s) || !(method instanceof String name)) {
            return null;
        }
        Object[] p = params == null ? new Object[0] : params;
        Object result = call(s, name, p);
        if (result != null) {
            context.setPropertyResolved(true);
        }
        return result;
    }

    private static Object call(String s, String name, Object[] p) {
        return switch (name) {
            case "startswith" -> p.length == 1 && anyMatch(p[0], s::startsWith);
            case "endswith" -> p.length == 1 && anyMatch(p[0], s::endsWith);
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

    private static String arg(Object[] p) {
        return p.length == 0 || p[0] == null ? null : String.valueOf(p[0]);
    }

    /** {@code s.startswith("x")} or {@code s.startswith(("x", "y"))}. */
    private static boolean anyMatch(Object arg, java.util.function.Predicate<String> test) {
        if (arg instanceof Collection<?> c) {
            return c.stream().anyMatch(o -> test.test(String.valueOf(o)));
        }
        return test.test(String.valueOf(arg));
    }

    /** Python strip: whitespace when {@code chars} is None, else any of {@code chars}. */
    private static String strip(String s, String chars, boolean left, boolean right) {
        int start = 0;
        int end = s.length();
        while (left && start < end && strippable(s.charAt(start), chars)) {
            start++;
        }
        while (right && end > start && strippable(s.charAt(end - 1), chars)) {
            end--;
        }
        return s.substring(start, end);
    }

    private static boolean strippable(char c, String chars) {
        return chars == null ? Character.isWhitespace(c) || Character.isSpaceChar(c) : chars.indexOf(c) >= 0;
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
