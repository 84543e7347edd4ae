package io.moemesh.model.chat;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.filter.Filter;
import com.hubspot.jinjava.objects.collections.PyList;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Jinja's filters over a collection that Jinjava lacks (jinja2/filters.py {@code do_items}, {@code do_max},
 * {@code do_min}): Llama 3.1-3.3's and Qwen3-Coder's templates print a tool call's arguments with
 * {@code {% for k, v in tool_call.arguments | items %}}, which was refused when the template loaded.
 */
final class PythonCollectionFilters {
    private PythonCollectionFilters() {
    }

    static List<Filter> filters() {
        return List.of(new ItemsFilter(), new MinMaxFilter("max", ">"), new MinMaxFilter("min", "<"));
    }

    /**
     * jinja2 {@code do_items(value)}: the mapping's (key, value) pairs in its order, as tuples (so that a for loop
     * unpacks them, {@code pair[0]} indexes them and they print as Python's); Undefined has none, anything else is
     * a TypeError.
     */
    private static final class ItemsFilter implements Filter {
        @Override
        public String getName() {
            return "items";
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
            return filter(var, interpreter, (Object[]) args, Map.of());
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
            Object v = PythonValues.unwrap(var);
            if (v == null) {
                return new PyList(new ArrayList<>());
            }
            if (!(v instanceof Map<?, ?> m)) {
                throw PythonError.typeError("Can only get item pairs from a mapping.");
            }
            List<Object> pairs = new ArrayList<>(m.size());
            for (Map.Entry<?, ?> e : m.entrySet()) {
                pairs.add(new PythonTuple(new PyList(new ArrayList<>(Arrays.asList(e.getKey(), e.getValue())))));
            }
            return new PyList(pairs);
        }
    }

    /**
     * jinja2 {@code do_max}/{@code do_min(value, case_sensitive=False, attribute=None)}: Python's
     * {@code max}/{@code min} over what iterating the value yields, keyed by the item's (dotted) attribute when one
     * is named and by the lowercased string unless case-sensitive; the first of equal items wins, as in Python. An
     * empty value gives Undefined; items Python cannot order are a TypeError.
     */
    private record MinMaxFilter(String name, String op) implements Filter {
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
            boolean caseSensitive = PythonValues.truth(JinjaOverrides.argument(args, kwargs, 0, "case_sensitive",
                    false));
            Object attribute = JinjaOverrides.argument(args, kwargs, 1, "attribute", null);
            Object best = null;
            Object bestKey = null;
            boolean first = true;
            for (Object item : JinjaOverrides.iterate(var)) {
                Object key = key(item, attribute, caseSensitive, interpreter);
                if (first || PythonArithmetic.compare(op, key, bestKey)) {
                    best = item;
                    bestKey = key;
                    first = false;
                }
            }
            return best; // null, Undefined, when there was no item
        }

        /** jinja2 {@code make_attrgetter} with {@code ignore_case} unless case-sensitive. */
        private static Object key(Object item, Object attribute, boolean caseSensitive,
                JinjavaInterpreter interpreter) {
            Object key = item;
            if (attribute != null && !(attribute instanceof PyNone)) {
                key = interpreter.resolveProperty(item, Arrays.asList(PythonValues.str(attribute).split("\\.")));
            }
            Object k = PythonValues.unwrap(key);
            return !caseSensitive && k instanceof CharSequence s ? s.toString().toLowerCase(Locale.ROOT) : key;
        }
    }
}
