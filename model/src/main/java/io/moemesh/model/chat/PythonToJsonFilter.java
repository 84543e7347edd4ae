package io.moemesh.model.chat;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.OutputTooBigException;
import com.hubspot.jinjava.lib.filter.Filter;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The {@code tojson} filter as transformers defines it (chat_template_utils.py):
 * {@code tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)} returning
 * {@code json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)}, so
 * the first positional argument is ensure_ascii, and the separators default to ", " / ": " (item separator ","
 * when indenting): Jinjava's own tojson is compact Jackson output, which would change the prompt of every
 * tool-calling template. Floats are written as Python's repr; None is null, while an Undefined value fails as
 * json.dumps fails on it.
 */
final class PythonToJsonFilter implements Filter {

    @Override
    public String getName() {
        return "tojson";
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
        return filter(var, interpreter, args, Map.of());
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
        boolean ensureAscii = PythonValues.truth(JinjaOverrides.argument(args, kwargs, 0, "ensure_ascii", false));
        Object indent = JinjaOverrides.argument(args, kwargs, 1, "indent", null);
        Object separators = JinjaOverrides.argument(args, kwargs, 2, "separators", null);
        boolean sortKeys = PythonValues.truth(JinjaOverrides.argument(args, kwargs, 3, "sort_keys", false));
        String indentUnit = switch (indent) {
            case null -> null;
            case PyNone n -> null;
            case Boolean b -> b ? " " : ""; // Python: ' ' * True
            case Number n -> " ".repeat(Math.max(0, n.intValue()));
            default -> PythonValues.str(indent);
        };
        // json.JSONEncoder: (', ', ': ') without indent, (',', ': ') with one
        String itemSeparator = indentUnit == null ? ", " : ",";
        String keySeparator = ": ";
        if (separators != null && !(separators instanceof PyNone)) {
            if (!(separators instanceof List<?> pair) || pair.size() != 2) {
                throw new IllegalArgumentException("tojson: separators must be an (item_separator, key_separator) "
                        + "pair");
            }
            itemSeparator = PythonValues.str(pair.get(0));
            keySeparator = PythonValues.str(pair.get(1));
        }
        StringBuilder out = new StringBuilder();
        new Writer(out, indentUnit, itemSeparator, keySeparator, sortKeys, ensureAscii, OutputBudget.limit())
                .value(var, 0);
        return out.toString();
    }

    /** Writes json.dumps' text; past {@code limit} characters (the render's {@link OutputBudget}) it fails. */
    private record Writer(StringBuilder out, String indent, String itemSeparator, String keySeparator,
                          boolean sortKeys, boolean ensureAscii, long limit) {
        void value(Object v, int depth) {
            if (out.length() > limit) {
                throw new OutputTooBigException(limit, out.length());
            }
            switch (v) {
                case null -> throw PythonError.typeError("Object of type Undefined is not JSON serializable");
                case PyNone n -> out.append("null");
                case Boolean b -> out.append(b ? "true" : "false");
                case Integer i -> out.append(i);
                case Long l -> out.append(l);
                case Short s -> out.append(s);
                case Byte b -> out.append(b);
                case BigInteger b -> out.append(b);
                case Number n -> out.append(PythonValues.floatRepr(n.doubleValue()));
                case CharSequence s -> string(s.toString());
                case Map<?, ?> m -> map(m, depth);
                case Collection<?> c -> list(new ArrayList<>(c), depth);
                case Object[] a -> list(List.of(a), depth);
                default -> string(v.toString());
            }
        }

        private void map(Map<?, ?> m, int depth) {
            if (m.isEmpty()) {
                out.append("{}");
                return;
            }
            List<Map.Entry<?, ?>> entries = new ArrayList<>(m.entrySet());
            if (sortKeys) {
                entries.sort((a, b) -> compareKeys(a.getKey(), b.getKey()));
            }
            out.append('{');
            for (int i = 0; i < entries.size(); i++) {
                separator(i, depth + 1);
                string(key(entries.get(i).getKey()));
                out.append(keySeparator);
                value(entries.get(i).getValue(), depth + 1);
            }
            close(depth);
            out.append('}');
        }

        private void list(List<?> l, int depth) {
            if (l.isEmpty()) {
                out.append("[]");
                return;
            }
            out.append('[');
            for (int i = 0; i < l.size(); i++) {
                separator(i, depth + 1);
                value(l.get(i), depth + 1);
            }
            close(depth);
            out.append(']');
        }

        private void separator(int index, int depth) {
            if (indent == null) {
                if (index > 0) {
                    out.append(itemSeparator);
                }
            } else {
                out.append(index > 0 ? itemSeparator : "").append('\n').append(indent.repeat(depth));
            }
        }

        private void close(int depth) {
            if (indent != null) {
                out.append('\n').append(indent.repeat(depth));
            }
        }

        private void string(String s) {
            out.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"' -> out.append("\\\"");
                    case '\\' -> out.append("\\\\");
                    case '\n' -> out.append("\\n");
                    case '\r' -> out.append("\\r");
                    case '\t' -> out.append("\\t");
                    case '\b' -> out.append("\\b");
                    case '\f' -> out.append("\\f");
                    default -> {
                        if (c < 0x20 || (ensureAscii && c >= 0x7F)) { // json's ESCAPE_ASCII: [^\\ -~]
                            out.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
                        } else {
                            out.append(c);
                        }
                    }
                }
            }
            out.append('"');
        }

        /**
         * json.dumps' key: str as is, True/False/None as true/false/null, numbers as their repr (floats as json
         * spells them: "NaN", "Infinity").
         */
        private static String key(Object k) {
            return switch (PythonValues.unwrap(k)) {
                case Boolean b -> b ? "true" : "false";
                case PyNone n -> "null";
                case Double d -> PythonValues.floatRepr(d);
                case Float f -> PythonValues.floatRepr(f.doubleValue());
                case BigDecimal d -> PythonValues.floatRepr(d.doubleValue());
                case Object o -> PythonValues.str(o);
            };
        }

        /**
         * Python's {@code <} on the original keys, as json.dumps sorts them before converting them: numbers (bool
         * included) numerically, strings by code point (Java's compareTo goes by UTF-16 unit); json.dumps raises
         * TypeError on keys Python cannot order, such as a number and a string.
         */
        private static int compareKeys(Object a, Object b) {
            Object x = PythonValues.unwrap(a);
            Object y = PythonValues.unwrap(b);
            if (PythonValues.isNumber(x) && PythonValues.isNumber(y)) {
                return PythonValues.compareNumbers(x, y);
            }
            if (x instanceof CharSequence s && y instanceof CharSequence t) {
                return Arrays.compare(s.toString().codePoints().toArray(), t.toString().codePoints().toArray());
            }
            throw PythonError.typeError("'<' not supported between instances of '" + PythonValues.typeName(x)
                    + "' and '" + PythonValues.typeName(y) + "'");
        }
    }
}
