package io.moemesh.model.chat;

import com.hubspot.jinjava.el.ExtendedSyntaxBuilder;
import com.hubspot.jinjava.el.TruthyTypeConverter;
import com.hubspot.jinjava.el.ext.ExtendedParser;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.exptest.ExpTest;
import com.hubspot.jinjava.lib.filter.Filter;
import com.hubspot.jinjava.lib.tag.IfTag;
import com.hubspot.jinjava.tree.TagNode;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.function.BiPredicate;
import jinjava.de.odysseus.el.ExpressionFactoryImpl;
import jinjava.de.odysseus.el.tree.Bindings;
import jinjava.de.odysseus.el.tree.TreeBuilder;
import jinjava.de.odysseus.el.tree.impl.Builder;
import jinjava.de.odysseus.el.tree.impl.Parser;
import jinjava.de.odysseus.el.tree.impl.ast.AstBinary;
import jinjava.de.odysseus.el.tree.impl.ast.AstNode;
import jinjava.javax.el.ELContext;

/**
 * Jinjava's tests, filters, tags and operators replaced where they differ from Jinja's (jinja2/tests.py,
 * jinja2/filters.py, Python's truth and equality; see {@link PythonValues} and {@link PyNone}):
 * <ul>
 *   <li>truth ({@code if}/{@code elif}, {@code not}/{@code and}/{@code or}, {@code a if c else b},
 *       {@code selectattr}): Jinjava's ObjectTruthValue takes "false"/"False" as false, so a turn whose content
 *       is "False" vanished from {@code {% if message['content'] %}} templates (Phi-3.5, DeepSeek-R1-Distill);</li>
 *   <li>{@code ==}/{@code !=} and the tests {@code eq}/{@code equalto}/{@code ==}, {@code ne}/{@code !=}:
 *       Python's equality, so that None equals only None and {@code '1' != 1};</li>
 *   <li>{@code is defined} (None is defined), {@code is none} (Undefined is not none);</li>
 *   <li>{@code default}/{@code d}: {@code do_default(value, default_value='', boolean=False)} returns the
 *       default only for Undefined (or a falsy value with boolean), and the default as it is (Jinjava's
 *       returns {@code Objects.toString(default)}, so {@code x|default(false)|tojson} printed "false" quoted);</li>
 *   <li>{@code trim}: {@code soft_str(value).strip(chars)}: Unicode whitespace as {@code str.isspace}, or the
 *       given characters (Jinjava's strips chars ≤ U+0020 and ignores the argument).</li>
 * </ul>
 */
final class JinjaOverrides {
    private JinjaOverrides() {
    }

    static List<Filter> filters() {
        return List.of(new DefaultFilter("default"), new DefaultFilter("d"), new TrimFilter());
    }

    static List<ExpTest> tests() {
        BiPredicate<Object, Object[]> eq = (v, args) -> args.length == 1 && PythonValues.equal(v, args[0]);
        BiPredicate<Object, Object[]> ne = (v, args) -> args.length == 1 && !PythonValues.equal(v, args[0]);
        return List.of(test("defined", (v, args) -> v != null), test("none", (v, args) -> v instanceof PyNone),
                test("truthy", (v, args) -> PythonValues.truth(v)), test("eq", eq), test("equalto", eq),
                test("==", eq), test("ne", ne), test("!=", ne));
    }

    private static ExpTest test(String name, BiPredicate<Object, Object[]> test) {
        return new ExpTest() {
            @Override
            public String getName() {
                return name;
            }

            @Override
            public boolean evaluate(Object var, JinjavaInterpreter interpreter, Object... args) {
                return test.test(var, args);
            }
        };
    }

    /** The expression factory of Jinjava's constructor with Python truth and equality. */
    static ExpressionFactoryImpl expressionFactory() {
        return new ExpressionFactoryImpl(new Properties(), new PythonTypeConverter()) {
            @Override
            protected TreeBuilder createTreeBuilder(Properties properties, Builder.Feature... features) {
                return new PythonSyntaxBuilder(features);
            }
        };
    }

    /** JUEL converts every operand of not/and/or/?: (and Jinjava's "or") to Boolean through this. */
    private static final class PythonTypeConverter extends TruthyTypeConverter {
        private static final long serialVersionUID = 1L;

        @Override
        protected Boolean coerceToBoolean(Object value) {
            return PythonValues.truth(value);
        }
    }

    private static final class PythonSyntaxBuilder extends ExtendedSyntaxBuilder {
        private static final long serialVersionUID = 1L;

        PythonSyntaxBuilder(Builder.Feature... features) {
            super(features);
        }

        @Override
        protected Parser createParser(String expression) {
            return new ExtendedParser(this, expression) {
                @Override
                protected AstBinary createAstBinary(AstNode left, AstNode right, AstBinary.Operator operator) {
                    if (operator == AstBinary.EQ) {
                        return super.createAstBinary(left, right, new Equality(true));
                    }
                    if (operator == AstBinary.NE) {
                        return super.createAstBinary(left, right, new Equality(false));
                    }
                    return super.createAstBinary(left, right, operator);
                }
            };
        }
    }

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

    /** {@code {% if %}} and {@code {% elif %}} test their expression with Python's truth. */
    static final class PythonIfTag extends IfTag {
        private static final long serialVersionUID = 1L;

        @Override
        public boolean isPositiveIfElseNode(TagNode tagNode, JinjavaInterpreter interpreter) {
            return PythonValues.truth(interpreter.resolveELExpression(tagNode.getHelpers(), tagNode.getLineNumber(),
                    tagNode.getStartPosition()));
        }
    }

    /** jinja2 filters.py {@code do_default(value, default_value="", boolean=False)}. */
    private record DefaultFilter(String name) implements Filter {
        @Override
        public String getName() {
            return name;
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
            return filter(var, interpreter, (Object[]) args, Map.of());
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
            Object fallback = argument(args, kwargs, 0, "default_value", "");
            boolean onFalsy = PythonValues.truth(argument(args, kwargs, 1, "boolean", false));
            return var == null || (onFalsy && !PythonValues.truth(var)) ? fallback : var;
        }
    }

    /** jinja2 filters.py {@code do_trim(value, chars=None)}: {@code soft_str(value).strip(chars)}. */
    private static final class TrimFilter implements Filter {
        @Override
        public String getName() {
            return "trim";
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
            return filter(var, interpreter, (Object[]) args, Map.of());
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
            Object chars = argument(args, kwargs, 0, "chars", null);
            return PythonStringMethods.strip(PythonValues.str(var),
                    chars == null || chars instanceof PyNone ? null : PythonValues.str(chars), true, true);
        }
    }

    /** A Python argument given by position or keyword. */
    static Object argument(Object[] args, Map<String, Object> kwargs, int position, String name, Object absent) {
        if (kwargs.containsKey(name)) {
            return kwargs.get(name);
        }
        return args.length > position ? args[position] : absent;
    }
}
