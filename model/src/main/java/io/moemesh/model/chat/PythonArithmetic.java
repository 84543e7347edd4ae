package io.moemesh.model.chat;

import com.hubspot.jinjava.objects.collections.PyList;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.math.MathContext;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

/**
 * Python's arithmetic and order comparisons on the values a template handles (int: Long, Integer, BigInteger and
 * bool; float: Double, Float, BigDecimal; str; list; tuple), where JUEL's differ: JUEL coerces operands to numbers
 * ({@code '5' - 1} was 4, {@code 'a' - 1} a Jinjava error that failed the render as the template's fault, though the
 * value came from the request), divides by zero to infinity and wraps ints at 64 bits; Python raises TypeError on
 * operands of the wrong type and ZeroDivisionError on a zero divisor, and its ints do not overflow. An undefined
 * operand is jinja2's UndefinedError ({@code Undefined.__add__} and its other operators fail). The messages are
 * CPython 3.11's. Results of {@code +} on strings and lists are bounded by the render's {@link OutputBudget}.
 */
final class PythonArithmetic {
    /** Bits beyond which an int power is refused: Python would compute it, slowly, and print no digits of it. */
    private static final long MAX_POWER_BITS = 1 << 20;
    private static final BigInteger LONG_MIN = BigInteger.valueOf(Long.MIN_VALUE);
    private static final BigInteger LONG_MAX = BigInteger.valueOf(Long.MAX_VALUE);

    private PythonArithmetic() {
    }

    /** A Python value: a SafeString's text, a Character (Jinjava's item of a string) as a str. */
    static Object py(Object o) {
        Object v = PythonValues.unwrap(o);
        return v instanceof Character c ? c.toString() : v;
    }

    static boolean isInt(Object o) {
        return o instanceof Long || o instanceof Integer || o instanceof Short || o instanceof Byte
                || o instanceof BigInteger || o instanceof Boolean;
    }

    static boolean isFloat(Object o) {
        return o instanceof Double || o instanceof Float || o instanceof BigDecimal;
    }

    private static boolean isNumber(Object o) {
        return isInt(o) || isFloat(o);
    }

    private static BigInteger big(Object o) {
        return switch (o) {
            case BigInteger i -> i;
            case Boolean b -> b ? BigInteger.ONE : BigInteger.ZERO;
            default -> BigInteger.valueOf(((Number) o).longValue());
        };
    }

    private static double dbl(Object o) {
        return o instanceof Boolean b ? (b ? 1 : 0) : ((Number) o).doubleValue();
    }

    /** An int result: a Long when it fits, as JUEL's literals are, else a BigInteger. */
    static Object normalize(BigInteger i) {
        return i.compareTo(LONG_MIN) >= 0 && i.compareTo(LONG_MAX) <= 0 ? (Object) i.longValue() : i;
    }

    private static PythonError unsupported(String op, Object a, Object b) {
        return PythonError.typeError("unsupported operand type(s) for " + op + ": '" + PythonValues.typeName(a)
                + "' and '" + PythonValues.typeName(b) + "'");
    }

    static Object add(Object x, Object y) {
        Object a = py(x);
        Object b = py(y);
        if (isNumber(a) && isNumber(b)) {
            return isFloat(a) || isFloat(b) ? dbl(a) + dbl(b) : normalize(big(a).add(big(b)));
        }
        if (a instanceof CharSequence s) {
            if (!(b instanceof CharSequence t)) {
                throw PythonError.typeError("can only concatenate str (not \"" + PythonValues.typeName(b)
                        + "\") to str");
            }
            OutputBudget.check((long) s.length() + t.length());
            return s.toString() + t;
        }
        if (a instanceof List<?> l) {
            boolean tuple = a instanceof PythonTuple;
            if (!(b instanceof List<?> m) || (b instanceof PythonTuple) != tuple) {
                throw PythonError.typeError("can only concatenate " + (tuple ? "tuple" : "list") + " (not \""
                        + PythonValues.typeName(b) + "\") to " + (tuple ? "tuple" : "list"));
            }
            List<Object> out = new ArrayList<>(l);
            out.addAll(m);
            return tuple ? new PythonTuple(new PyList(out)) : new PyList(out);
        }
        throw unsupported("+", a, b);
    }

    static Object sub(Object x, Object y) {
        Object a = py(x);
        Object b = py(y);
        if (!isNumber(a) || !isNumber(b)) {
            throw unsupported("-", a, b);
        }
        return isFloat(a) || isFloat(b) ? dbl(a) - dbl(b) : normalize(big(a).subtract(big(b)));
    }

    /** Numbers only: {@link PythonOperators}' {@code *} repeats strings and lists itself. */
    static Object mul(Object a, Object b) {
        if (!isNumber(a) || !isNumber(b)) {
            throw unsupported("*", a, b);
        }
        return isFloat(a) || isFloat(b) ? dbl(a) * dbl(b) : normalize(big(a).multiply(big(b)));
    }

    /** {@code /}: true division, a float whatever the operands. */
    static Object div(Object x, Object y) {
        Object a = py(x);
        Object b = py(y);
        if (!isNumber(a) || !isNumber(b)) {
            throw unsupported("/", a, b);
        }
        if (dbl(b) == 0) {
            throw PythonError.zeroDivision("division by zero");
        }
        if (isInt(a) && isInt(b) && (big(a).bitLength() > 53 || big(b).bitLength() > 53)) {
            // ints past a double's precision: divided exactly enough that the one rounding to double decides
            return new BigDecimal(big(a)).divide(new BigDecimal(big(b)), new MathContext(40)).doubleValue();
        }
        return dbl(a) / dbl(b);
    }

    /** {@code //}: floored division. */
    static Object floorDiv(Object x, Object y) {
        Object a = py(x);
        Object b = py(y);
        if (!isNumber(a) || !isNumber(b)) {
            throw unsupported("//", a, b);
        }
        if (isInt(a) && isInt(b)) {
            if (big(b).signum() == 0) {
                throw PythonError.zeroDivision("integer division or modulo by zero");
            }
            BigInteger[] qr = big(a).divideAndRemainder(big(b));
            BigInteger q = qr[1].signum() != 0 && qr[1].signum() != big(b).signum() ? qr[0].subtract(BigInteger.ONE)
                    : qr[0];
            return normalize(q);
        }
        if (dbl(b) == 0) {
            throw PythonError.zeroDivision("float floor division by zero");
        }
        return Math.floor(dbl(a) / dbl(b));
    }

    /**
     * {@code %} of numbers: the remainder has the divisor's sign (floored). A string's printf-style formatting
     * ({@code '%s' % x}) is not implemented: an error the template causes (not a Python error).
     */
    static Object mod(Object x, Object y) {
        Object a = py(x);
        Object b = py(y);
        if (a instanceof CharSequence) {
            throw new UnsupportedOperationException("printf-style string formatting ('...' % value) is not "
                    + "supported by this engine");
        }
        if (!isNumber(a) || !isNumber(b)) {
            throw unsupported("%", a, b);
        }
        if (isInt(a) && isInt(b)) {
            if (big(b).signum() == 0) {
                throw PythonError.zeroDivision("integer modulo by zero");
            }
            BigInteger r = big(a).mod(big(b).abs());
            return normalize(big(b).signum() < 0 && r.signum() != 0 ? r.add(big(b)) : r);
        }
        double d = dbl(b);
        if (d == 0) {
            throw PythonError.zeroDivision("float modulo");
        }
        double r = dbl(a) % d;
        if (r != 0 && (r < 0) != (d < 0)) {
            r += d;
        } else if (r == 0) {
            r = Math.copySign(0.0, d);
        }
        return r;
    }

    static Object pow(Object x, Object y) {
        Object a = py(x);
        Object b = py(y);
        if (!isNumber(a) || !isNumber(b)) {
            throw unsupported("** or pow()", a, b);
        }
        if (isInt(a) && isInt(b) && big(b).signum() >= 0) {
            BigInteger base = big(a);
            BigInteger exponent = big(b);
            if (base.abs().compareTo(BigInteger.ONE) <= 0) {
                return normalize(base.signum() == 0 ? (exponent.signum() == 0 ? BigInteger.ONE : BigInteger.ZERO)
                        : base.signum() > 0 || !exponent.testBit(0) ? BigInteger.ONE : BigInteger.ONE.negate());
            }
            if (exponent.bitLength() > 31 || (long) base.bitLength() * exponent.longValue() > MAX_POWER_BITS) {
                throw PythonError.valueError("the result of " + base + " ** " + exponent + " has more than "
                        + MAX_POWER_BITS + " bits, this engine's limit");
            }
            return normalize(base.pow(exponent.intValue()));
        }
        if (dbl(a) == 0 && dbl(b) < 0) {
            throw PythonError.zeroDivision("0.0 cannot be raised to a negative power");
        }
        return Math.pow(dbl(a), dbl(b));
    }

    static Object neg(Object x) {
        Object a = py(x);
        if (!isNumber(a)) {
            throw PythonError.typeError("bad operand type for unary -: '" + PythonValues.typeName(a) + "'");
        }
        return isFloat(a) ? -dbl(a) : normalize(big(a).negate());
    }

    /** Unary {@code +}: the number itself (a bool as an int). */
    static Object pos(Object x) {
        Object a = py(x);
        if (!isNumber(a)) {
            throw PythonError.typeError("bad operand type for unary +: '" + PythonValues.typeName(a) + "'");
        }
        return a instanceof Boolean b ? (long) (b ? 1 : 0) : a;
    }

    /**
     * Python's {@code a op b} for {@code <}, {@code <=}, {@code >}, {@code >=}: numbers with numbers (NaN is in no
     * order), strings by code point, lists with lists and tuples with tuples item by item.
     */
    static boolean compare(String op, Object x, Object y) {
        Object a = py(x);
        Object b = py(y);
        if (isNumber(a) && isNumber(b)) {
            if (Double.isNaN(dbl(a)) || Double.isNaN(dbl(b))) {
                return false;
            }
            return holds(op, PythonValues.compareNumbers(a, b));
        }
        if (a instanceof CharSequence s && b instanceof CharSequence t) {
            return holds(op, compareCodePoints(s.toString(), t.toString()));
        }
        if (a instanceof List<?> l && b instanceof List<?> m && (a instanceof PythonTuple) == (b instanceof PythonTuple)) {
            Iterator<?> i = l.iterator();
            Iterator<?> j = m.iterator();
            while (i.hasNext() && j.hasNext()) {
                Object p = i.next();
                Object q = j.next();
                if (!PythonValues.equal(p, q)) {
                    return compare(op, p, q);
                }
            }
            return holds(op, Integer.compare(l.size(), m.size()));
        }
        throw PythonError.typeError("'" + op + "' not supported between instances of '" + PythonValues.typeName(a)
                + "' and '" + PythonValues.typeName(b) + "'");
    }

    private static boolean holds(String op, int c) {
        return switch (op) {
            case "<" -> c < 0;
            case "<=" -> c <= 0;
            case ">" -> c > 0;
            default -> c >= 0;
        };
    }

    private static int compareCodePoints(String s, String t) {
        int i = 0;
        int j = 0;
        while (i < s.length() && j < t.length()) {
            int c = s.codePointAt(i);
            int d = t.codePointAt(j);
            if (c != d) {
                return Integer.compare(c, d);
            }
            i += Character.charCount(c);
            j += Character.charCount(d);
        }
        return Boolean.compare(i < s.length(), j < t.length());
    }
}
