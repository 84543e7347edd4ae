package io.moemesh.model.chat;

import com.hubspot.jinjava.interpret.OutputTooBigException;
import com.hubspot.jinjava.objects.collections.PyList;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BinaryOperator;
import java.util.function.UnaryOperator;
import jinjava.de.odysseus.el.tree.Bindings;
import jinjava.de.odysseus.el.tree.impl.ast.AstBinary;
import jinjava.de.odysseus.el.tree.impl.ast.AstIdentifier;
import jinjava.de.odysseus.el.tree.impl.ast.AstNode;
import jinjava.de.odysseus.el.tree.impl.ast.AstUnary;
import jinjava.javax.el.ELContext;

/**
 * The operators whose Python meaning differs from JUEL's, installed by {@link JinjaParser}: equality, membership,
 * {@code and}, and arithmetic and order comparisons ({@link PythonArithmetic}), each failing as Python fails on an
 * undefined operand (jinja2's UndefinedError, naming the variable as jinja2 does).
 */
final class PythonOperators {
    static final AstBinary.Operator EQUAL = new Equality(true);
    static final AstBinary.Operator NOT_EQUAL = new Equality(false);
    static final AstBinary.Operator AND = new And();
    static final AstBinary.Operator MUL = new Arithmetic("*", Mul::apply);
    static final AstBinary.Operator MOD = new Arithmetic("%", PythonArithmetic::mod);
    static final AstBinary.Operator ADD = new Arithmetic("+", PythonArithmetic::add);
    static final AstBinary.Operator SUB = new Arithmetic("-", PythonArithmetic::sub);
    static final AstBinary.Operator DIV = new Arithmetic("/", PythonArithmetic::div);
    static final AstBinary.Operator FLOOR_DIV = new Arithmetic("//", PythonArithmetic::floorDiv);
    static final AstBinary.Operator POW = new Arithmetic("**", PythonArithmetic::pow);
    static final AstBinary.Operator LT = new Arithmetic("<", (a, b) -> PythonArithmetic.compare("<", a, b));
    static final AstBinary.Operator LE = new Arithmetic("<=", (a, b) -> PythonArithmetic.compare("<=", a, b));
    static final AstBinary.Operator GT = new Arithmetic(">", (a, b) -> PythonArithmetic.compare(">", a, b));
    static final AstBinary.Operator GE = new Arithmetic(">=", (a, b) -> PythonArithmetic.compare(">=", a, b));
    static final AstBinary.Operator IN = new In(true);
    static final AstBinary.Operator NOT_IN = new In(false);
    static final AstUnary.Operator NEG = new Unary("-", PythonArithmetic::neg);
    static final AstUnary.Operator POS = new Unary("+", PythonArithmetic::pos);

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

    /** A binary operator of {@link PythonArithmetic}: both operands evaluated, neither undefined. */
    private record Arithmetic(String symbol, BinaryOperator<Object> apply) implements AstBinary.Operator {
        @Override
        public Object eval(Bindings bindings, ELContext context, AstNode left, AstNode right) {
            Object a = defined(left, left.eval(bindings, context), bindings);
            Object b = defined(right, right.eval(bindings, context), bindings);
            return apply.apply(a, b);
        }

        @Override
        public String toString() {
            return symbol;
        }
    }

    /** Python's unary {@code -} or {@code +}. */
    private record Unary(String symbol, UnaryOperator<Object> apply) implements AstUnary.Operator {
        @Override
        public Object eval(Bindings bindings, ELContext context, AstNode node) {
            return apply.apply(defined(node, node.eval(bindings, context), bindings));
        }

        @Override
        public String toString() {
            return symbol;
        }
    }

    /**
     * {@code value}, or jinja2's UndefinedError when it is Undefined: {@code 'x' is undefined} for a variable, as
     * jinja2 says it; for another expression (an absent key, an attribute) the expression is named.
     */
    static Object defined(AstNode node, Object value, Bindings bindings) {
        if (value != null) {
            return value;
        }
        if (node instanceof AstIdentifier id) {
            throw PythonError.undefined("'" + id.getName() + "' is undefined");
        }
        String expression = structure(node, bindings);
        throw PythonError.undefined(expression == null ? "an operand is undefined" : "'" + expression
                + "' is undefined");
    }

    /** The expression {@code node} is, as JUEL writes it back, or null where Jinjava's nodes cannot. */
    static String structure(AstNode node, Bindings bindings) {
        StringBuilder b = new StringBuilder();
        try {
            node.appendStructure(b, bindings);
        } catch (UnsupportedOperationException e) {
            return null; // Jinjava's list, dict and keyword nodes
        }
        return b.toString();
    }

    /**
     * Python's {@code *}: a str or list times an int repeats it (bounded by the render's {@link OutputBudget}: the
     * result's characters, a list's counted as its repr's, may not pass what the render may output); numbers
     * multiply ({@link PythonArithmetic#mul}).
     */
    private static final class Mul {
        private Mul() {
        }

        static Object apply(Object x, Object y) {
            Object a = PythonArithmetic.py(x);
            Object b = PythonArithmetic.py(y);
            if (isRepeatable(a) && PythonArithmetic.isInt(b)) {
                return repeat(a, b);
            }
            if (PythonArithmetic.isInt(a) && isRepeatable(b)) {
                return repeat(b, a);
            }
            if (isRepeatable(a) || isRepeatable(b)) {
                throw PythonError.typeError("can't multiply sequence by non-int of type '"
                        + PythonValues.typeName(isRepeatable(a) ? b : a) + "'");
            }
            return PythonArithmetic.mul(a, b);
        }

        private static boolean isRepeatable(Object o) {
            return o instanceof CharSequence || o instanceof List<?>;
        }

        private static Object repeat(Object sequence, Object count) {
            long limit = OutputBudget.limit();
            long n = count instanceof Boolean b ? (b ? 1 : 0)
                    : count instanceof BigInteger i
                    ? i.max(BigInteger.valueOf(-1)).min(BigInteger.valueOf(limit + 1)).longValue()
                    : ((Number) count).longValue();
            int size = sequence instanceof CharSequence s ? s.length() : ((List<?>) sequence).size();
            if (n <= 0 || size == 0) {
                return sequence instanceof CharSequence ? ""
                        : sequence instanceof PythonTuple ? new PythonTuple(new PyList(new ArrayList<>()))
                        : new PyList(new ArrayList<>());
            }
            // characters each repetition adds: a string's own, a list's items as its repr prints them (at least
            // 3 each, so a list of n items holds at most a third as many references as the budget has characters)
            long unit = sequence instanceof CharSequence s ? s.length()
                    : OutputBudget.itemsSize((List<?>) sequence, limit);
            if (n > limit / unit) {
                throw new OutputTooBigException(limit, n > Long.MAX_VALUE / unit ? Long.MAX_VALUE : n * unit);
            }
            if (sequence instanceof CharSequence s) {
                return s.toString().repeat((int) n);
            }
            List<Object> out = new ArrayList<>((int) (size * n));
            for (long i = 0; i < n; i++) {
                out.addAll((List<?>) sequence);
            }
            return sequence instanceof PythonTuple ? new PythonTuple(new PyList(out)) : new PyList(out);
        }
    }
}
