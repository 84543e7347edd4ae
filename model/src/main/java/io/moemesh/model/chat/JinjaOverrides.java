package io.moemesh.model.chat;

import com.hubspot.jinjava.el.TruthyTypeConverter;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.expression.ExpressionStrategy;
import com.hubspot.jinjava.lib.exptest.ExpTest;
import com.hubspot.jinjava.lib.filter.Filter;
import com.hubspot.jinjava.lib.fn.MacroFunction;
import com.hubspot.jinjava.lib.tag.IfTag;
import com.hubspot.jinjava.tree.TagNode;
import com.hubspot.jinjava.tree.output.RenderedOutputNode;
import com.hubspot.jinjava.tree.parse.ExpressionToken;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.function.BiPredicate;
import jinjava.de.odysseus.el.ExpressionFactoryImpl;
import jinjava.de.odysseus.el.misc.TypeConverter;
import jinjava.de.odysseus.el.tree.TreeStore;
import jinjava.de.odysseus.el.tree.impl.Cache;
import jinjava.javax.el.ELException;

/**
 * Jinjava's tests, filters, tags, conversions and output replaced where they differ from Jinja's (jinja2/tests.py,
 * jinja2/filters.py, Python's truth, equality and str; see {@link PythonValues} and {@link PyNone}; the grammar
 * is {@link JinjaParser}'s):
 * <ul>
 *   <li>truth ({@code if}/{@code elif}, {@code not}/{@code and}/{@code or}, {@code a if c else b},
 *       {@code selectattr}): Jinjava's ObjectTruthValue takes "false"/"False" as false, so a turn whose content
 *       is "False" vanished from {@code {% if message['content'] %}} templates (Phi-3.5, DeepSeek-R1-Distill);</li>
 *   <li>{@code ==}/{@code !=} and the tests {@code eq}/{@code equalto}/{@code ==}, {@code ne}/{@code !=}:
 *       Python's equality, so that None equals only None and {@code '1' != 1};</li>
 *   <li>{@code is defined} (None is defined), {@code is none} (Undefined is not none);</li>
 *   <li>{@code is iterable} and {@code is sequence} as Python answers them (a string is both; Jinjava: neither),
 *       {@code is callable} (true of {@code raise_exception}, {@code strftime_now} and macros), {@code is in}
 *       (Python's {@code in}: also a substring of a string, where Jinjava fails), {@code is number} (a bool is
 *       one);</li>
 *   <li>{@code default}/{@code d}: {@code do_default(value, default_value='', boolean=False)} returns the
 *       default only for Undefined (or a falsy value with boolean), and the default as it is (Jinjava's
 *       returns {@code Objects.toString(default)}, so {@code x|default(false)|tojson} printed "false" quoted);</li>
 *   <li>{@code trim}: {@code soft_str(value).strip(chars)}: Unicode whitespace as {@code str.isspace}, or the
 *       given characters (Jinjava's strips chars ≤ U+0020 and ignores the argument);</li>
 *   <li>printing ({@code {{ x }}}), {@code ~}, {@code string} and {@code join}: Python's {@code str()}, so
 *       booleans are True/False and lists and dicts print as Python prints them (Jinjava: true/false, and a dict's
 *       item as {@code fn:map_entry('k', 'v')}).</li>
 * </ul>
 */
final class JinjaOverrides {
    private JinjaOverrides() {
    }

    static List<Filter> filters() {
        return List.of(new DefaultFilter("default"), new DefaultFilter("d"), new TrimFilter(), new StringFilter(),
                new JoinFilter());
    }

    static List<ExpTest> tests() {
        BiPredicate<Object, Object[]> eq = (v, args) -> args.length == 1 && PythonValues.equal(v, args[0]);
        BiPredicate<Object, Object[]> ne = (v, args) -> args.length == 1 && !PythonValues.equal(v, args[0]);
        return List.of(test("defined", (v, args) -> v != null), test("none", (v, args) -> v instanceof PyNone),
                test("truthy", (v, args) -> PythonValues.truth(v)), test("eq", eq), test("equalto", eq),
                test("==", eq), test("ne", ne), test("!=", ne),
                test("iterable", (v, args) -> isIterable(PythonValues.unwrap(v))),
                test("sequence", (v, args) -> isSequence(PythonValues.unwrap(v))),
                test("callable", (v, args) -> v instanceof TemplateFunctions.Function || v instanceof MacroFunction),
                test("in", (v, args) -> args.length == 1 && PythonValues.contains(args[0], v)),
                test("number", (v, args) -> PythonValues.isNumber(PythonValues.unwrap(v))));
    }

    /** jinja2 {@code test_iterable}: {@code iter(value)} succeeds; Undefined iterates as empty. */
    private static boolean isIterable(Object v) {
        return v == null || v instanceof CharSequence || v instanceof Iterable<?> || v instanceof Map<?, ?>
                || v instanceof Object[] || (v instanceof Iterator<?> && !(v instanceof PyNone));
    }

    /** jinja2 {@code test_sequence}: has {@code len} and {@code __getitem__} (str, list, dict; Undefined too). */
    private static boolean isSequence(Object v) {
        return v == null || v instanceof CharSequence || v instanceof List<?> || v instanceof Map<?, ?>
                || v instanceof Object[];
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

    /**
     * The expression factory of Jinjava's constructor with Python's grammar ({@link JinjaParser}) and Python's
     * truth and str() in conversions; its cache of parsed trees has the size of Jinjava's.
     */
    static ExpressionFactoryImpl expressionFactory() {
        return new ExpressionFactoryImpl(new TreeStore(JinjaParser.BUILDER, new Cache(1000)), CONVERTER);
    }

    /** The conversions of every expression (stateless, shared). */
    static final TypeConverter CONVERTER = new PythonTypeConverter();

    /**
     * JUEL converts every operand of not/and/or/?: (and Jinjava's "or") to Boolean through this, and the operands
     * of {@code ~} (and arguments of String parameters) to String.
     */
    private static final class PythonTypeConverter extends TruthyTypeConverter {
        private static final long serialVersionUID = 1L;
        private static final int MAX_QUOTED = 60;

        /**
         * JUEL's coercion, failing as Python fails: a value that cannot be the number (or other type) an operation
         * or a function's parameter needs ({@code range('a')}, a filter's numeric argument) is the values' fault, a
         * TypeError, where JUEL's ELException failed the render as the template's.
         */
        @Override
        public <T> T convert(Object value, Class<T> type) {
            try {
                return super.convert(value, type);
            } catch (ELException e) {
                throw PythonError.typeError("cannot use " + PythonValues.shortRepr(value, MAX_QUOTED) + " ("
                        + PythonValues.typeName(value) + ") as "
                        + (Number.class.isAssignableFrom(type) || type.isPrimitive() ? "a number" : "a " + type
                        .getSimpleName()));
            }
        }

        @Override
        protected Boolean coerceToBoolean(Object value) {
            return PythonValues.truth(value);
        }

        @Override
        protected String coerceToString(Object value) {
            return PythonValues.str(value);
        }
    }

    /** {@code {{ x }}} prints Python's {@code str(x)} (Jinja's {@code to_string}); Undefined prints nothing. */
    static final class PythonOutput implements ExpressionStrategy {
        private static final long serialVersionUID = 1L;

        @Override
        public RenderedOutputNode interpretOutput(ExpressionToken master, JinjavaInterpreter interpreter) {
            return new RenderedOutputNode(PythonValues.str(interpreter.resolveELExpression(master.getExpr(),
                    master.getLineNumber())));
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

    /** jinja2 filters.py {@code do_string}: {@code soft_str(value)}. */
    private static final class StringFilter implements Filter {
        @Override
        public String getName() {
            return "string";
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
            return PythonValues.str(var);
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
            return PythonValues.str(var);
        }
    }

    /**
     * jinja2 filters.py {@code do_join(value, d='', attribute=None)}: {@code str(d).join(map(str, value))}, with
     * each item's attribute first when one is named (resolved as Jinjava's join resolves it); bounded by the
     * render's {@link OutputBudget}.
     */
    private static final class JoinFilter implements Filter {
        @Override
        public String getName() {
            return "join";
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
            return filter(var, interpreter, (Object[]) args, Map.of());
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
            String separator = PythonValues.str(argument(args, kwargs, 0, "d", ""));
            Object attribute = argument(args, kwargs, 1, "attribute", null);
            List<String> parts = new ArrayList<>();
            long length = 0;
            for (Object item : iterate(var)) {
                Object v = attribute == null || attribute instanceof PyNone ? item
                        : interpreter.resolveProperty(item, PythonValues.str(attribute));
                String part = PythonValues.str(v);
                length += part.length() + (parts.isEmpty() ? 0 : separator.length());
                OutputBudget.check(length); // the render's budget: a long list joined by a long separator
                parts.add(part);
            }
            return String.join(separator, parts);
        }
    }

    /** What Python's iteration yields: a string's characters, a dict's keys; Undefined none; None is a TypeError. */
    static Iterable<?> iterate(Object var) {
        Object v = PythonValues.unwrap(var);
        return switch (v) {
            case null -> List.of();
            case PyNone n -> throw PythonError.typeError("'NoneType' object is not iterable");
            case CharSequence s -> s.toString().codePoints().mapToObj(Character::toString).toList();
            case Map<?, ?> m -> m.keySet();
            case Iterable<?> i -> i;
            case Object[] a -> Arrays.asList(a);
            case Iterator<?> i -> (Iterable<Object>) () -> (Iterator<Object>) i;
            default -> throw PythonError.typeError("'" + PythonValues.typeName(v) + "' object is not iterable");
        };
    }

    /** A Python argument given by position or keyword. */
    static Object argument(Object[] args, Map<String, Object> kwargs, int position, String name, Object absent) {
        if (kwargs.containsKey(name)) {
            return kwargs.get(name);
        }
        return args.length > position ? args[position] : absent;
    }
}
