package io.moemesh.model.chat;

import com.hubspot.jinjava.el.ExtendedSyntaxBuilder;
import com.hubspot.jinjava.el.ext.AdditionOperator;
import com.hubspot.jinjava.el.ext.AstDict;
import com.hubspot.jinjava.el.ext.AstList;
import com.hubspot.jinjava.el.ext.AstNamedParameter;
import com.hubspot.jinjava.el.ext.AstTuple;
import com.hubspot.jinjava.el.ext.ExtendedParser;
import com.hubspot.jinjava.el.ext.NamedParameterOperator;
import com.hubspot.jinjava.objects.collections.PyList;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import jinjava.de.odysseus.el.tree.Bindings;
import jinjava.de.odysseus.el.tree.Tree;
import jinjava.de.odysseus.el.tree.impl.Builder;
import jinjava.de.odysseus.el.tree.impl.Parser;
import jinjava.de.odysseus.el.tree.impl.Scanner;
import jinjava.de.odysseus.el.tree.impl.Scanner.ScanException;
import jinjava.de.odysseus.el.tree.impl.Scanner.Symbol;
import jinjava.de.odysseus.el.tree.impl.Scanner.Token;
import jinjava.de.odysseus.el.tree.impl.ast.AstBinary;
import jinjava.de.odysseus.el.tree.impl.ast.AstBracket;
import jinjava.de.odysseus.el.tree.impl.ast.AstDot;
import jinjava.de.odysseus.el.tree.impl.ast.AstIdentifier;
import jinjava.de.odysseus.el.tree.impl.ast.AstNode;
import jinjava.de.odysseus.el.tree.impl.ast.AstNull;
import jinjava.de.odysseus.el.tree.impl.ast.AstParameters;
import jinjava.de.odysseus.el.tree.impl.ast.AstProperty;
import jinjava.de.odysseus.el.tree.impl.ast.AstUnary;
import jinjava.javax.el.ELContext;

/**
 * Jinjava's expression parser brought to Jinja's grammar (jinja2/parser.py) where they differ, so that an
 * expression either means what it means in Jinja or does not parse (and the template is refused when it is
 * loaded):
 * <ul>
 *   <li>{@code a if b else c}: the condition {@code b} is no conditional itself (Jinja's {@code parse_condexpr});
 *       tuples print as tuples;</li>
 *   <li>{@code not} binds looser than comparisons ({@code parse_not} above {@code parse_compare}):
 *       {@code not a == b} is {@code not (a == b)}, {@code not x is test} is {@code not (x is test)}; Jinjava
 *       binds it to the operand next to it. A {@code not} where Jinja does not allow one ({@code a == not b}) is
 *       a syntax error;</li>
 *   <li>{@code and} gives one of its operands, as {@code or} does ({@code 'a' and 'b'} is 'b'), not a boolean;</li>
 *   <li>comparisons chain: {@code a < b < c} is {@code a < b and b < c}, all comparison operators at one
 *       level; Jinjava parses one comparison and stops;</li>
 *   <li>filters and tests apply in any sequence to an operand ({@code messages|length is even}); Jinjava takes
 *       either one filter chain or one test;</li>
 *   <li>slices take a step ({@code messages[::-1]}, Qwen3's template) and follow Python's rules, strings by code
 *       point ({@link PythonSlice});</li>
 *   <li>arithmetic and order comparisons are Python's ({@link PythonArithmetic}): {@code *} repeats a string or
 *       list by an int ({@code '-' * 3}), {@code %} has the divisor's sign, operands of the wrong type are a
 *       TypeError (JUEL coerced {@code '5' - 1} to 4), a zero divisor a ZeroDivisionError, an undefined operand
 *       jinja2's UndefinedError; {@code **} binds tighter than {@code *}, unary {@code +} is no abs();</li>
 *   <li>string literals take Python's escapes ({@link PythonScanner}: {@code \x41}, {@code \\u00e9},
 *       {@code \N{...}}, octal; an unknown escape stays as written), as Jinja's lexer decodes them
 *       (unicode-escape); Jinjava knows only a few;</li>
 *   <li>a keyword argument's value is a whole expression ({@code f(n=x - 1)}; Jinjava: {@code (n=x) - 1});</li>
 *   <li>{@code ==} / {@code !=} are Python's equality ({@link PythonValues#equal}), {@code in} / {@code not in}
 *       Python's membership ({@link PythonValues#contains}: Jinjava's compares with Java's equals).</li>
 * </ul>
 * Every expression of a template is parsed by this class, when the template is loaded ({@link TemplateCheck})
 * and when it renders (the {@link JinjaEnvironment}'s expression factory).
 */
final class JinjaParser extends ExtendedParser {
    /** The features Jinjava's own expression factory has (JUEL's JEE6 profile). */
    private static final Builder.Feature[] FEATURES = {Builder.Feature.METHOD_INVOCATIONS, Builder.Feature.VARARGS};
    static final SyntaxBuilder BUILDER = new SyntaxBuilder();

    /** Builds the tree of an expression ({@code #{...}}) with this parser. */
    static final class SyntaxBuilder extends ExtendedSyntaxBuilder {
        private static final long serialVersionUID = 1L;

        private SyntaxBuilder() {
            super(FEATURES);
        }

        @Override
        protected Parser createParser(String expression) {
            return new JinjaParser(this, expression);
        }
    }

    /**
     * The tree of one Jinja expression, as rendering parses it.
     *
     * @throws jinjava.de.odysseus.el.tree.TreeBuilderException if it is not a valid expression
     */
    static Tree parse(String expression) {
        return BUILDER.build("#{" + expression.strip() + "}");
    }

    private JinjaParser(Builder context, String input) {
        super(context, input);
    }

    @Override
    protected Scanner createScanner(String expression) {
        return new PythonScanner(expression);
    }

    /**
     * Jinja's {@code parse_condexpr}: {@code or ('if' or ['else' condexpr])*}. The condition is an {@code or}
     * expression, so {@code a if b if c else d} is {@code (a if b) if c else d}; Jinjava parsed a whole
     * conditional as the condition ({@code a if (b if c else d)}). A missing else is Undefined. JUEL's
     * {@code c ? a : b}, which Jinja does not have, is not parsed.
     */
    @Override
    protected AstNode expr(boolean required) throws ScanException, ParseException {
        AstNode v = or(required);
        if (v == null) {
            return null;
        }
        while (getToken().getSymbol() == Symbol.QUESTION && "if".equals(getToken().getImage())) {
            consumeToken();
            AstNode condition = or(true);
            AstNode otherwise = new AstNull();
            if (getToken().getSymbol() == Symbol.COLON && "else".equals(getToken().getImage())) {
                consumeToken();
                otherwise = expr(true);
            }
            v = createAstChoice(condition, v, otherwise);
        }
        return v;
    }

    /**
     * A node whose operands JUEL's {@code getChild} does not give (Jinjava's list, tuple and dict literals and
     * keyword arguments are leaves to it): {@link TemplateCheck} walks them to find the parts of an expression made
     * of literals only.
     */
    interface Operands {
        List<AstNode> operands();
    }

    /** A tuple literal {@code (a, b)} evaluates to a {@link PythonTuple}, which prints as Python prints it. */
    @Override
    protected AstTuple createAstTuple(AstParameters parameters) throws ScanException, ParseException {
        final class Tuple extends AstTuple implements Operands {
            Tuple() {
                super(parameters);
            }

            @Override
            public Object eval(Bindings bindings, ELContext context) {
                return new PythonTuple((PyList) super.eval(bindings, context));
            }

            @Override
            public List<AstNode> operands() {
                return children(parameters);
            }
        }
        return new Tuple();
    }

    @Override
    protected AstList createAstList(AstParameters parameters) throws ScanException, ParseException {
        final class ListLiteral extends AstList implements Operands {
            ListLiteral() {
                super(parameters);
            }

            @Override
            public List<AstNode> operands() {
                return children(parameters);
            }
        }
        return new ListLiteral();
    }

    @Override
    protected AstDict createAstDict(Map<AstNode, AstNode> entries) {
        final class DictLiteral extends AstDict implements Operands {
            DictLiteral() {
                super(entries);
            }

            @Override
            public List<AstNode> operands() {
                List<AstNode> out = new ArrayList<>();
                dict.forEach((k, v) -> {
                    out.add(k);
                    out.add(v);
                });
                return out;
            }
        }
        return new DictLiteral();
    }

    private static List<AstNode> children(AstParameters parameters) {
        List<AstNode> out = new ArrayList<>(parameters.getCardinality());
        for (int i = 0; i < parameters.getCardinality(); i++) {
            out.add(parameters.getChild(i));
        }
        return out;
    }

    /** {@code and := not ('and' not)*}: Jinja's {@code parse_and}. */
    @Override
    protected AstNode and(boolean required) throws ScanException, ParseException {
        AstNode v = not(required);
        if (v == null) {
            return null;
        }
        while (true) {
            Token t = getToken();
            if (t.getSymbol() == Symbol.AND) {
                consumeToken();
                v = createAstBinary(v, not(true), AstBinary.AND);
            } else if (t.getSymbol() == Symbol.EXTENSION && "|".equals(t.getImage())) {
                // a '|' no filter name follows ({{ a | 1 }}): Jinjava's handler would throw an ELException, which
                // is no syntax error naming the position
                fail("a filter name after '|'");
            } else {
                return v;
            }
        }
    }

    /** {@code not := 'not' not | compare}: Jinja's {@code parse_not}. */
    private AstNode not(boolean required) throws ScanException, ParseException {
        if (getToken().getSymbol() == Symbol.NOT) {
            consumeToken();
            return createAstUnary(not(true), AstUnary.NOT);
        }
        return eq(required);
    }

    /**
     * Jinja's {@code parse_compare}: {@code add (op add)*} with {@code ==, !=, <, <=, >, >=, in, not in} at one
     * level; a chain {@code a op b op c} is {@code (a op b) and (b op c)} (the middle operand is evaluated twice,
     * which nothing in a template can observe).
     */
    @Override
    protected AstNode eq(boolean required) throws ScanException, ParseException {
        AstNode left = add(required);
        if (left == null) {
            return null;
        }
        AstNode chain = null;
        while (true) {
            Token t = getToken();
            AstBinary.Operator op = switch (t.getSymbol()) {
                case EQ -> AstBinary.EQ;
                case NE -> AstBinary.NE;
                case LT -> AstBinary.LT;
                case LE -> AstBinary.LE;
                case GT -> AstBinary.GT;
                case GE -> AstBinary.GE;
                default -> null;
            };
            AstNode right;
            AstNode comparison;
            if (op != null) {
                consumeToken();
                right = add(true);
                comparison = createAstBinary(left, right, op);
            } else if (t.getSymbol() == Symbol.EXTENSION && "in".equals(t.getImage())) {
                consumeToken();
                right = add(true);
                comparison = createAstBinary(left, right, PythonOperators.IN);
            } else if ("not".equals(t.getImage()) && "in".equals(lookahead(0).getImage())) {
                consumeToken();
                consumeToken();
                right = add(true);
                comparison = createAstBinary(left, right, PythonOperators.NOT_IN);
            } else {
                return chain == null ? left : chain;
            }
            chain = chain == null ? comparison : createAstBinary(chain, comparison, AstBinary.AND);
            left = right;
        }
    }

    /** A {@code not} reaching an operand is where Jinja has none ({@code a == not b}, {@code -not x}). */
    @Override
    protected AstNode unary(boolean required) throws ScanException, ParseException {
        if (getToken().getSymbol() == Symbol.NOT) {
            fail("an operand (Jinja's 'not' negates a whole comparison: write (not x) here)");
        }
        if (getToken().getSymbol() == Symbol.PLUS
                || getToken().getSymbol() == Symbol.EXTENSION && "+".equals(getToken().getImage())) {
            consumeToken(); // Python's unary plus; Jinjava's is abs()
            return createAstUnary(unary(true), PythonOperators.POS);
        }
        return super.unary(required);
    }

    @Override
    protected AstUnary createAstUnary(AstNode child, AstUnary.Operator operator) {
        return super.createAstUnary(child, operator == AstUnary.NEG ? PythonOperators.NEG : operator);
    }

    /**
     * Jinja's {@code parse_math2}: {@code pow (('*' | '/' | '//' | '%') pow)*}, whatever interpreter is current
     * (Jinjava's {@code mul} reads the precedence off it).
     */
    @Override
    protected AstNode mul(boolean required) throws ScanException, ParseException {
        AstNode v = pow(required);
        if (v == null) {
            return null;
        }
        while (true) {
            Token t = getToken();
            switch (t.getSymbol()) {
                case MUL -> {
                    consumeToken();
                    v = createAstBinary(v, pow(true), AstBinary.MUL);
                }
                case DIV -> {
                    consumeToken();
                    v = createAstBinary(v, pow(true), AstBinary.DIV);
                }
                case MOD -> {
                    consumeToken();
                    v = createAstBinary(v, pow(true), AstBinary.MOD);
                }
                case EXTENSION -> {
                    if (!"//".equals(t.getImage())) {
                        return v;
                    }
                    consumeToken();
                    v = createAstBinary(v, pow(true), PythonOperators.FLOOR_DIV);
                }
                default -> {
                    return v;
                }
            }
        }
    }

    /**
     * Jinja's {@code parse_pow}: {@code unary ('**' unary)*}, binding tighter than {@code *} and to the left
     * ({@code 2 * 3 ** 2} is 18, {@code 2 ** 3 ** 2} is 64, {@code -2 ** 2} is 4, as in Jinja; Jinjava put
     * {@code **} at the level of {@code *}).
     */
    private AstNode pow(boolean required) throws ScanException, ParseException {
        AstNode v = filter(required);
        if (v == null) {
            return null;
        }
        while (getToken().getSymbol() == Symbol.EXTENSION && "**".equals(getToken().getImage())) {
            consumeToken();
            v = createAstBinary(v, filter(true), PythonOperators.POW);
        }
        return v;
    }

    /**
     * Arguments (and list items): Jinjava's, but a keyword argument {@code name=value} takes a whole expression
     * as its value. Jinjava parses the {@code =} as an operator at the level of {@code +}, so
     * {@code namespace(last_query_index=messages|length - 1)} (Qwen3's template) passed
     * {@code (last_query_index=messages|length) - 1} and failed. A trailing comma is allowed, as in Python.
     */
    @Override
    protected AstParameters params(Symbol left, Symbol right) throws ScanException, ParseException {
        consumeToken(left);
        List<AstNode> args = new ArrayList<>();
        AstNode v = argument(false);
        if (v != null) {
            args.add(v);
            while (getToken().getSymbol() == Symbol.COMMA) {
                consumeToken();
                if (getToken().getSymbol() == right) {
                    break;
                }
                args.add(argument(true));
            }
        }
        consumeToken(right);
        return createAstParameters(args);
    }

    private AstNode argument(boolean required) throws ScanException, ParseException {
        if (getToken().getSymbol() == Symbol.IDENTIFIER && lookahead(0) == NamedParameterOperator.TOKEN) {
            AstIdentifier name = identifier(consumeToken().getImage());
            consumeToken();
            AstNode value = expr(true);
            final class Keyword extends AstNamedParameter implements Operands {
                Keyword() {
                    super(name, value);
                }

                @Override
                public List<AstNode> operands() {
                    return List.of(value);
                }
            }
            return new Keyword();
        }
        return expr(required);
    }

    /** Jinja's {@code parse_filter_expr}: any sequence of {@code |filter(...)} and {@code is [not] test [arg]}. */
    @Override
    protected AstNode filter(boolean required) throws ScanException, ParseException {
        AstNode v = unary(required);
        if (v == null) {
            return null;
        }
        while (true) {
            Token t = getToken();
            if ("|".equals(t.getImage()) && t.getSymbol() == Symbol.EXTENSION
                    && lookahead(0).getSymbol() == Symbol.IDENTIFIER) {
                v = parseFiltersAsNestedMethods(v);
            } else if ("is".equals(t.getImage()) && t.getSymbol() == Symbol.IDENTIFIER
                    && "not".equals(lookahead(0).getImage()) && isTestName(lookahead(1))) {
                consumeToken();
                consumeToken();
                v = test(v, "evaluateNegated");
            } else if ("is".equals(t.getImage()) && t.getSymbol() == Symbol.IDENTIFIER && isTestName(lookahead(0))) {
                consumeToken();
                v = test(v, "evaluate");
            } else {
                return v;
            }
        }
    }

    /** Jinjava's test call, {@code exptest:NAME.evaluate(value, interpreter[, arg])}. */
    private AstNode test(AstNode value, String method) throws ScanException, ParseException {
        String name = consumeToken().getImage();
        Token next = getToken();
        if ((next.getSymbol() == Symbol.QUESTION && "if".equals(next.getImage())) || next.getSymbol() == Symbol.NOT
                || "is".equals(next.getImage()) || "in".equals(next.getImage())) {
            // Jinja reads these words as the test's argument (a variable named "if", ...) or refuses the chain
            fail("the end of the test (Jinja would take '" + next.getImage() + "' as the test's argument: "
                    + "parenthesize the test)");
        }
        List<AstNode> params = new ArrayList<>(List.of(value, interpreter()));
        AstNode arg = value(); // Jinja: one primary with its postfix, when one follows
        if (arg != null) {
            params.add(arg);
        }
        AstProperty test = createAstDot(identifier(EXPTEST_PREFIX + name), method, true);
        return createAstMethod(test, createAstParameters(params));
    }

    /** A word that can name a test: an identifier or a keyword JUEL scans specially (eq, true, in, ...). */
    private static boolean isTestName(Token t) {
        return switch (t.getSymbol()) {
            case IDENTIFIER, EQ, NE, LT, LE, GT, GE, TRUE, FALSE, EXTENSION -> true;
            default -> false;
        };
    }

    /**
     * Jinjava's {@code value} (an operand with its {@code .name}, {@code [key]} and calls), with Python slices
     * {@code [start:stop:step]}, any part left out.
     */
    @Override
    protected AstNode value() throws ScanException, ParseException {
        boolean lvalue = true;
        AstNode v = nonliteral();
        if (v == null) {
            v = literal();
            if (v == null) {
                return null;
            }
            lvalue = false;
        }
        while (true) {
            Token t = getToken();
            if (t.getSymbol() == Symbol.DOT) {
                consumeToken();
                AstDot dot = createAstDot(v, consumeToken(Symbol.IDENTIFIER).getImage(), lvalue);
                v = getToken().getSymbol() == Symbol.LPAREN ? createAstMethod(dot, params()) : dot;
            } else if (t.getSymbol() == Symbol.LBRACK) {
                consumeToken();
                AstNode start = expr(false);
                if (isColon(getToken())) {
                    consumeToken();
                    AstNode stop = expr(false);
                    AstNode step = null;
                    if (isColon(getToken())) {
                        consumeToken();
                        step = expr(false);
                    }
                    consumeToken(Symbol.RBRACK);
                    v = new PythonSlice(v, start, stop, step);
                } else {
                    if (start == null) {
                        fail("an index or a slice");
                    }
                    consumeToken(Symbol.RBRACK);
                    AstBracket bracket = createAstBracket(v, start, lvalue, true);
                    v = getToken().getSymbol() == Symbol.LPAREN ? createAstMethod(bracket, params()) : bracket;
                }
            } else {
                return v;
            }
        }
    }

    /** ':' (JUEL scans Jinja's {@code else} as a COLON too). */
    private static boolean isColon(Token t) {
        return t.getSymbol() == Symbol.COLON && ":".equals(t.getImage());
    }

    @Override
    protected AstBinary createAstBinary(AstNode left, AstNode right, AstBinary.Operator operator) {
        AstBinary.Operator python = operator == AstBinary.EQ ? PythonOperators.EQUAL
                : operator == AstBinary.NE ? PythonOperators.NOT_EQUAL
                : operator == AstBinary.AND ? PythonOperators.AND
                : operator == AstBinary.MUL ? PythonOperators.MUL
                : operator == AstBinary.MOD ? PythonOperators.MOD
                : operator == AdditionOperator.OP ? PythonOperators.ADD
                : operator == AstBinary.SUB ? PythonOperators.SUB
                : operator == AstBinary.DIV ? PythonOperators.DIV
                : operator == AstBinary.LT ? PythonOperators.LT
                : operator == AstBinary.LE ? PythonOperators.LE
                : operator == AstBinary.GT ? PythonOperators.GT
                : operator == AstBinary.GE ? PythonOperators.GE
                : operator;
        return super.createAstBinary(left, right, python);
    }
}
