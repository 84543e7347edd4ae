package io.moemesh.model.chat;

import com.hubspot.jinjava.objects.collections.PyList;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.List;
import jinjava.de.odysseus.el.misc.NumberOperations;
import jinjava.de.odysseus.el.tree.Bindings;
import jinjava.de.odysseus.el.tree.impl.ast.AstBinary;
import jinjava.de.odysseus.el.tree.impl.ast.AstNode;
import jinjava.javax.el.ELContext;

/** The binary operators whose Python meaning differs from JUEL's, installed by {@link JinjaParser}. */
final class PythonOperators {
    /**
     * Longest string or list {@code *} makes: what the renderer would print at most (JinjaEnvironment's output
     * limit), so that {@code 'x' * 10**12} fails instead of filling the heap.
     */
    static final long MAX_REPEAT = 64L * 1024 * 1024;

    static final AstBinary.Operator EQUAL = new Equality(true);
    static final AstBinary.Operator NOT_EQUAL = new Equality(false);
    static final AstBinary.Operator AND = new And();
    static final AstBinary.Operator MUL = new Mul();
    static final AstBinary.Operator MOD = new Mod();
    static final AstBinary.Operator IN = new In(true);
    static final AstBinary.Operator NOT_IN = new In(false);

    private PythonOperators() {
    }

    /** Python's {@code ==} / {@code !=} ({@link PythonValues#equal}). */
    private record Equality(boolean equal) implements AstBinary.Operator {
        @Override
        public Object eval(Bindings bindings, ELContext context, AstNode left, AstNode right) {
            return PythonValues.equal(left.eval(bindings, context), right.eval(bindings, context)) == equal;
        }

        @Override
        public String toString() {
            return equal ? "==" : "!=";
        }
    }

    /** Python's {@code a in b} / {@code a not in b} ({@link PythonValues#contains}). */
    private record In(boolean in) implements AstBinary.Operator {
        @Override
        public Object eval(Bindings bindings, ELContext context, AstNode left, AstNode right) {
            return PythonValues.contains(right.eval(bindings, context), left.eval(bindings, context)) == in;
        }

        @Override
        public String toString() {
            return in ? "in" : "not in";
        }
    }

    /** Python's {@code a and b}: {@code a} when it is falsy (None, '', Undefined, ...), else {@code b}. */
    private static final class And implements AstBinary.Operator {
        @Override
        public Object eval(Bindings bindings, ELContext context, AstNode left, AstNode right) {
            Object a = left.eval(bindings, context);
            return PythonValues.truth(a) ? right.eval(bindings, context) : a;
        }

        @Override
        public String toString() {
            return "and";
        }
    }

    /**
     * Python's {@code %} on numbers: the remainder has the sign of the divisor (floored division; JUEL's has the
     * dividend's: {@code 7 % -3} is -2 in Python, 1 in Java). Anything else is JUEL's.
     */
    private static final class Mod implements AstBinary.Operator {
        @Override
        public Object eval(Bindings bindings, ELContext context, AstNode left, AstNode right) {
            Object a = left.eval(bindings, context);
            Object b = right.eval(bindings, context);
            Object r = NumberOperations.mod(bindings, a, b);
            if (r instanceof Number n && b instanceof Number d && n.doubleValue() != 0
                    && (n.doubleValue() < 0) != (d.doubleValue() < 0)) {
                return NumberOperations.add(bindings, r, b);
            }
            return r;
        }

        @Override
        public String toString() {
            return "%";
        }
    }

    /** Python's {@code *}: a str or list times an int repeats it; numbers multiply as JUEL multiplies them. */
    private static final class Mul implements AstBinary.Operator {
        @Override
        public Object eval(Bindings bindings, ELContext context, AstNode left, AstNode right) {
            Object a = PythonValues.unwrap(left.eval(bindings, context));
            Object b = PythonValues.unwrap(right.eval(bindings, context));
            if (isRepeatable(a) && isInt(b)) {
                return repeat(a, b);
            }
            if (isInt(a) && isRepeatable(b)) {
                return repeat(b, a);
            }
            if (isRepeatable(a) || isRepeatable(b)) {
                throw PythonError.typeError("can't multiply sequence by non-int of type '"
                        + PythonValues.typeName(isRepeatable(a) ? b : a) + "'");
            }
            return NumberOperations.mul(bindings, a, b);
        }

        private static boolean isRepeatable(Object o) {
            return o instanceof CharSequence || o instanceof List<?>;
        }

        private static boolean isInt(Object o) {
            return o instanceof Long || o instanceof Integer || o instanceof Short || o instanceof Byte
                    || o instanceof BigInteger || o instanceof Boolean;
        }

        private static Object repeat(Object sequence, Object count) {
            long n = count instanceof Boolean b ? (b ? 1 : 0)
                    : count instanceof BigInteger i
                    ? i.max(BigInteger.valueOf(-1)).min(BigInteger.valueOf(MAX_REPEAT + 1)).longValue()
                    : ((Number) count).longValue();
            int size = sequence instanceof CharSequence s ? s.length() : ((List<?>) sequence).size();
            if (n <= 0 || size == 0) {
                return sequence instanceof CharSequence ? ""
                        : sequence instanceof PythonTuple ? new PythonTuple(new PyList(new ArrayList<>()))
                        : new ArrayList<>();
            }
            if (n > MAX_REPEAT / size) {
                throw PythonError.valueError("a sequence of " + size + " repeated " + n + " times is longer than this "
                        + "engine's limit of " + MAX_REPEAT);
            }
            if (sequence instanceof CharSequence s) {
                return s.toString().repeat((int) n);
            }
            List<Object> out = new ArrayList<>((int) (size * n));
            for (long i = 0; i < n; i++) {
                out.addAll((List<?>) sequence);
            }
            return sequence instanceof PythonTuple ? new PythonTuple(new PyList(out)) : out;
        }

        @Override
        public String toString() {
            return "*";
        }
    }
}
