package io.moemesh.model.chat;

import com.hubspot.jinjava.interpret.OutputTooBigException;
import com.hubspot.jinjava.objects.SafeString;
import com.hubspot.jinjava.util.HasObjectTruthValue;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.math.MathContext;
import java.math.RoundingMode;
import java.util.Arrays;
import java.util.Collection;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * Python's truth value, {@code ==} and {@code str()} of the values a template handles, where Jinjava's differ:
 * Jinjava's ObjectTruthValue takes the string "false" (any case) as false, Python any non-empty string as true
 * (https://docs.python.org/3/library/stdtypes.html#truth-value-testing); Jinjava's {@code ==} coerces operands to
 * a common type ({@code '1' == 1} is true), Python's compares across types only between numbers (bool included).
 * Null is Jinja's Undefined (falsy, equal only to another Undefined: jinja2/runtime.py {@code Undefined.__eq__}).
 * Jinjava's {@link SafeString} (the result of {@code |safe}, and what Jinjava re-wraps later filter results in) is
 * a str subclass in Jinja (markupsafe's Markup) but not a CharSequence here, so every method unwraps it first.
 */
final class PythonValues {
    private PythonValues() {
    }

    /** {@code value}, or the string a {@link SafeString} wraps. */
    static Object unwrap(Object value) {
        return value instanceof SafeString s ? s.toString() : value;
    }

    /** Python's {@code bool(value)}. */
    static boolean truth(Object value) {
        return switch (unwrap(value)) {
            case null -> false;
            case HasObjectTruthValue h -> h.getObjectTruthValue();
            case Boolean b -> b;
            case BigDecimal d -> d.signum() != 0;
            case BigInteger i -> i.signum() != 0;
            case Number n -> n.doubleValue() != 0; // NaN is true in Python too
            case CharSequence s -> !s.isEmpty();
            case Collection<?> c -> !c.isEmpty();
            case Map<?, ?> m -> !m.isEmpty();
            case Object[] a -> a.length > 0;
            default -> true;
        };
    }

    /** Python's {@code a == b}. */
    static boolean equal(Object a, Object b) {
        a = unwrap(a);
        b = unwrap(b);
        if (a == b) {
            return true;
        }
        if (a == null || b == null || a instanceof PyNone || b instanceof PyNone) {
            return false;
        }
        if (isNumber(a) && isNumber(b)) {
            return numbersEqual(a, b);
        }
        if (a instanceof CharSequence || b instanceof CharSequence) {
            return a instanceof CharSequence && b instanceof CharSequence && a.toString().equals(b.toString());
        }
        if (a instanceof List<?> x && b instanceof List<?> y) {
            if (x.size() != y.size() || (x instanceof PythonTuple) != (y instanceof PythonTuple)) {
                return false;
            }
            Iterator<?> i = x.iterator();
            Iterator<?> j = y.iterator();
            while (i.hasNext()) {
                if (!equal(i.next(), j.next())) {
                    return false;
                }
            }
            return true;
        }
        if (a instanceof Map<?, ?> x && b instanceof Map<?, ?> y) {
            if (x.size() != y.size()) {
                return false;
            }
            for (Map.Entry<?, ?> e : x.entrySet()) {
                if (!y.containsKey(e.getKey()) || !equal(e.getValue(), y.get(e.getKey()))) {
                    return false;
                }
            }
            return true;
        }
        return a.equals(b);
    }

    /** Python's {@code item in container}. */
    static boolean contains(Object container, Object item) {
        Object c = unwrap(container);
        Object x = unwrap(item);
        return switch (c) {
            case null -> false; // Undefined iterates as empty
            case CharSequence s -> {
                if (!(x instanceof CharSequence part)) {
                    throw PythonError.typeError("'in <string>' requires string as left operand, not "
                            + typeName(x));
                }
                yield s.toString().contains(part);
            }
            case Map<?, ?> m -> m.keySet().stream().anyMatch(k -> equal(k, x));
            case Iterable<?> i -> {
                for (Object o : i) {
                    if (equal(o, x)) {
                        yield true;
                    }
                }
                yield false;
            }
            case Object[] a -> Arrays.asList(a).stream().anyMatch(o -> equal(o, x));
            default -> throw PythonError.typeError("argument of type '" + typeName(c)
                    + "' is not iterable");
        };
    }

    /** Python's bool is an int: {@code True == 1}, {@code 1 == 1.0}. */
    static boolean isNumber(Object o) {
        return o instanceof Number || o instanceof Boolean;
    }

    private static boolean numbersEqual(Object a, Object b) {
        double x = asDouble(a);
        double y = asDouble(b);
        if (Double.isNaN(x) || Double.isNaN(y) || Double.isInfinite(x) || Double.isInfinite(y)) {
            return x == y;
        }
        return exact(a).compareTo(exact(b)) == 0; // Python compares int and float exactly
    }

    /**
     * Python's order of two numbers ({@link #isNumber}), exact between int and float; NaN, which Python orders
     * with nothing, is put after everything (as Double.compare does) so that a sort still terminates.
     */
    static int compareNumbers(Object a, Object b) {
        double x = asDouble(a);
        double y = asDouble(b);
        if (Double.isNaN(x) || Double.isNaN(y) || Double.isInfinite(x) || Double.isInfinite(y)) {
            return Double.compare(x, y);
        }
        return exact(a).compareTo(exact(b));
    }

    private static double asDouble(Object o) {
        return o instanceof Boolean b ? (b ? 1 : 0) : ((Number) o).doubleValue();
    }

    private static BigDecimal exact(Object o) {
        return switch (o) {
            case Boolean b -> b ? BigDecimal.ONE : BigDecimal.ZERO;
            case BigDecimal d -> d;
            case BigInteger i -> new BigDecimal(i);
            case Double d -> new BigDecimal(d);
            case Float f -> new BigDecimal(f.doubleValue());
            default -> BigDecimal.valueOf(((Number) o).longValue());
        };
    }

    /**
     * Python's {@code str(value)}, as Jinja prints a value and its filters convert their input ({@code soft_str}):
     * None is "None", booleans "True"/"False", floats their repr ("nan", "inf", "-inf" for the non-finite ones),
     * lists, dicts and a dict's items ({@code dictsort}, {@code items()}) their repr ({@link #repr}); Undefined is "".
     */
    static String str(Object value) {
        return switch (unwrap(value)) {
            case null -> "";
            case CharSequence s -> s.toString();
            case Character c -> c.toString(); // Jinjava's list of a string's characters holds Characters
            case Boolean b -> b ? "True" : "False";
            case Double d -> pythonFloat(d);
            case Float f -> pythonFloat(f.doubleValue());
            case BigDecimal d -> pythonFloat(d.doubleValue());
            case Collection<?> c -> repr(c);
            case Map<?, ?> m -> repr(m);
            case Map.Entry<?, ?> e -> repr(e);
            case Object[] a -> repr(a);
            default -> value.toString();
        };
    }

    /**
     * Python's {@code repr(value)}, how a value inside a printed list or dict appears: strings quoted and escaped as
     * Python quotes them, None, True/False, floats' repr, lists {@code [a, b]}, tuples {@code (a, b)}, dicts
     * {@code {'k': v}}, a dict's item the tuple {@code ('k', v)}; Undefined is "Undefined" (jinja2's {@code Undefined.__repr__}).
     * A repr longer than the render may output fails as the output would ({@link OutputBudget}), before its text is
     * all built.
     */
    static String repr(Object value) {
        StringBuilder out = new StringBuilder();
        repr(value, out, 0, OutputBudget.limit());
        return out.toString();
    }

    /**
     * {@link #repr}, or when that would pass {@code max} characters a description of the value (its type and size):
     * for messages that quote a value.
     */
    static String shortRepr(Object value, int max) {
        if (OutputBudget.reprSize(value, max) <= max) {
            return repr(value);
        }
        return "a " + typeName(value) + " (" + (value instanceof Collection<?> c ? c.size() + " items"
                : value instanceof Map<?, ?> m ? m.size() + " keys" : "long") + ")";
    }

    /** Deeper than this a repr says "..." (Python raises RecursionError on a list that holds itself). */
    private static final int MAX_REPR_DEPTH = 100;

    /**
     * Appends the repr; past {@code limit} characters (the render's {@link OutputBudget}) it fails with Jinjava's
     * output-too-big error, checked after each item, before a printed list's text could take more memory than the
     * output may.
     */
    private static void repr(Object value, StringBuilder out, int depth, long limit) {
        if (out.length() > limit) {
            throw new OutputTooBigException(limit, out.length());
        }
        if (depth > MAX_REPR_DEPTH) {
            out.append("...");
            return;
        }
        switch (unwrap(value)) {
            case null -> out.append("Undefined");
            case CharSequence s -> quote(s.toString(), out);
            case Character c -> quote(c.toString(), out);
            case Map<?, ?> m -> {
                out.append('{');
                String separator = "";
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    out.append(separator);
                    repr(e.getKey(), out, depth + 1, limit);
                    out.append(": ");
                    repr(e.getValue(), out, depth + 1, limit);
                    separator = ", ";
                }
                out.append('}');
            }
            case Map.Entry<?, ?> e -> {
                out.append('(');
                repr(e.getKey(), out, depth + 1, limit);
                out.append(", ");
                repr(e.getValue(), out, depth + 1, limit);
                out.append(')');
            }
            case PythonTuple t -> {
                out.append('(');
                String separator = "";
                for (Object o : t) {
                    out.append(separator);
                    repr(o, out, depth + 1, limit);
                    separator = ", ";
                }
                out.append(t.size() == 1 ? ",)" : ")");
            }
            case Collection<?> c -> {
                out.append('[');
                String separator = "";
                for (Object o : c) {
                    out.append(separator);
                    repr(o, out, depth + 1, limit);
                    separator = ", ";
                }
                out.append(']');
            }
            case Object[] a -> repr(Arrays.asList(a), out, depth, limit);
            case Object o -> out.append(str(o));
        }
        if (out.length() > limit) {
            throw new OutputTooBigException(limit, out.length());
        }
    }

    /**
     * Python's {@code repr(str)} (Objects/unicodeobject.c {@code unicode_repr}): single quotes unless the text has
     * a single quote and no double quote; backslash, the quote, \t \n \r escaped; other characters Python does not
     * count as printable (control, format, surrogate, private-use, unassigned, separators but the space) as
     * {@code \xhh}, {@code \\uhhhh} or {@code \\Uhhhhhhhh}.
     */
    private static void quote(String s, StringBuilder out) {
        char quote = s.indexOf('\'') >= 0 && s.indexOf('"') < 0 ? '"' : '\'';
        out.append(quote);
        s.codePoints().forEach(c -> {
            if (c == quote || c == '\\') {
                out.append('\\').appendCodePoint(c);
            } else if (c == '\t') {
                out.append("\\t");
            } else if (c == '\n') {
                out.append("\\n");
            } else if (c == '\r') {
                out.append("\\r");
            } else if (c == ' ' || (c > 0x20 && c < 0x7F) || (c > 0x7F && isPrintable(c))) {
                out.appendCodePoint(c);
            } else {
                String hex = Integer.toHexString(c);
                int width = c <= 0xFF ? 2 : c <= 0xFFFF ? 4 : 8;
                out.append(c <= 0xFF ? "\\x" : c <= 0xFFFF ? "\\u" : "\\U").append("0".repeat(width - hex.length()))
                        .append(hex);
            }
        });
        out.append(quote);
    }

    /** Python's {@code str.isprintable} of one character: not in a category Other (C*) or Separator (Z*). */
    private static boolean isPrintable(int c) {
        return switch (Character.getType(c)) {
            case Character.CONTROL, Character.FORMAT, Character.SURROGATE, Character.PRIVATE_USE,
                 Character.UNASSIGNED, Character.LINE_SEPARATOR, Character.PARAGRAPH_SEPARATOR,
                 Character.SPACE_SEPARATOR -> false;
            default -> true;
        };
    }

    /** Python's {@code type(value).__name__} of the values a template handles. */
    static String typeName(Object value) {
        return switch (unwrap(value)) {
            case null -> "Undefined";
            case PyNone n -> "NoneType";
            case Boolean b -> "bool";
            case Double d -> "float";
            case Float f -> "float";
            case BigDecimal d -> "float";
            case Number n -> "int";
            case CharSequence s -> "str";
            case Character c -> "str";
            case Map<?, ?> m -> "dict";
            case PythonTuple t -> "tuple";
            case Collection<?> c -> "list";
            case Object o -> o.getClass().getSimpleName();
        };
    }

    /** Python's {@code repr(float)}: {@link #floatRepr} but for the non-finite values, which json spells otherwise. */
    private static String pythonFloat(double d) {
        if (Double.isNaN(d)) {
            return "nan";
        }
        if (Double.isInfinite(d)) {
            return d > 0 ? "inf" : "-inf";
        }
        return floatRepr(d);
    }

    /**
     * Python's {@code repr(float)} (Objects/floatobject.c {@code float_repr}, format 'r'): the shortest digits that
     * round-trip, positional when the decimal exponent is in [-4, 16), else {@code d.ddde±XX}; but NaN and the
     * infinities as json.dumps writes them ("NaN", "Infinity", "-Infinity"), since tojson is what calls it directly.
     */
    static String floatRepr(double d) {
        if (Double.isNaN(d)) {
            return "NaN";
        }
        if (Double.isInfinite(d)) {
            return d > 0 ? "Infinity" : "-Infinity";
        }
        if (d == 0) {
            return 1 / d < 0 ? "-0.0" : "0.0";
        }
        BigDecimal shortest = shortest(Math.abs(d));
        String digits = shortest.unscaledValue().toString();
        int exponent = digits.length() - 1 - shortest.scale(); // of the first digit
        StringBuilder out = new StringBuilder(d < 0 ? "-" : "");
        if (exponent < -4 || exponent >= 16) {
            out.append(digits.charAt(0));
            if (digits.length() > 1) {
                out.append('.').append(digits, 1, digits.length());
            }
            int e = Math.abs(exponent);
            return out.append(exponent < 0 ? "e-" : "e+").append(e < 10 ? "0" : "").append(e).toString();
        }
        if (exponent < 0) {
            return out.append("0.").append("0".repeat(-exponent - 1)).append(digits).toString();
        }
        if (digits.length() <= exponent + 1) {
            return out.append(digits).append("0".repeat(exponent + 1 - digits.length())).append(".0").toString();
        }
        return out.append(digits, 0, exponent + 1).append('.').append(digits, exponent + 1, digits.length())
                .toString();
    }

    /**
     * The shortest decimal that reads back as {@code d} (> 0), the closest of them to {@code d}: Java's
     * Double.toString is that (JDK 19+), except that when one digit is enough it may pick a closer two-digit
     * decimal (its javadoc; 4.9E-324 where Python prints 5e-324), so one-digit candidates are tried first.
     */
    private static BigDecimal shortest(double d) {
        BigDecimal jdk = new BigDecimal(Double.toString(d)).stripTrailingZeros();
        if (jdk.precision() != 2) {
            return jdk;
        }
        BigDecimal exact = new BigDecimal(d);
        BigDecimal best = null;
        for (RoundingMode mode : new RoundingMode[]{RoundingMode.FLOOR, RoundingMode.CEILING}) {
            BigDecimal c = jdk.round(new MathContext(1, mode));
            if (c.signum() > 0 && Double.parseDouble(c.toString()) == d && (best == null
                    || c.subtract(exact).abs().compareTo(best.subtract(exact).abs()) < 0)) {
                best = c;
            }
        }
        return best == null ? jdk : best.stripTrailingZeros();
    }
}
