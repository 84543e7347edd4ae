package io.moemesh.model.chat;

import com.hubspot.jinjava.objects.SafeString;
import com.hubspot.jinjava.util.HasObjectTruthValue;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.math.MathContext;
import java.math.RoundingMode;
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
            if (x.size() != y.size()) {
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
     * Python's {@code str(value)}, as Jinja's filters convert their input ({@code soft_str}): None is "None",
     * booleans "True"/"False", floats their repr ("nan", "inf", "-inf" for the non-finite ones); Undefined is "".
     */
    static String str(Object value) {
        return switch (unwrap(value)) {
            case null -> "";
            case Boolean b -> b ? "True" : "False";
            case Double d -> pythonFloat(d);
            case Float f -> pythonFloat(f.doubleValue());
            case BigDecimal d -> pythonFloat(d.doubleValue());
            default -> value.toString();
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
