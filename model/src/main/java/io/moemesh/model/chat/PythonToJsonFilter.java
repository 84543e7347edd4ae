package io.moemesh.model.chat;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.filter.Filter;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;

/**
 * The {@code tojson} filter as transformers defines it: Python's
 * {@code json.dumps(x, ensure_ascii=False, indent=indent, sort_keys=sort_keys)}, i.e. separators ", " and ": "
 * (Jinjava's own tojson is compact Jackson output, which would change the prompt of every tool-calling
 * template).
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
        Object indent = kwargs.getOrDefault("indent", args.length > 0 ? args[0] : null);
        boolean sortKeys = Boolean.TRUE.equals(kwargs.get("sort_keys"));
        boolean ensureAscii = Boolean.TRUE.equals(kwargs.get("ensure_ascii"));
        String indentUnit = null;
        if (indent instanceof Number n) {
            indentUnit = " ".repeat(Math.max(0, n.intValue()));
        } else if (indent instanceof String s) {
            indentUnit = s;
        }
        StringBuilder out = new StringBuilder();
        new Writer(out, indentUnit, sortKeys, ensureAscii).value(var, 0);
        return out.toString();
    }

    private record Writer(StringBuilder out, String indent, boolean sortKeys, boolean ensureAscii) {
        void value(Object v, int depth) {
            switch (v) {
                case null -> out.append("null");
                case Boolean b -> out.append(b ? "true" : "false");
                case Integer i -> out.append(i);
                case Long l -> out.append(l);
                case Short s -> out.append(s);
                case Byte b -> out.append(b);
                case java.math.BigInteger b -> out.append(b);
                case Number n -> out.append(pythonFloat(n.doubleValue()));
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
                entries.sort((a, b) -> String.valueOf(a.getKey()).compareTo(String.valueOf(b.getKey())));
            }
            out.append('{');
            for (int i = 0; i < entries.size(); i++) {
                separator(i, depth + 1);
                string(String.valueOf(entries.get(i).getKey()));
                out.append(": ");
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
                    out.append(", ");
                }
            } else {
                out.append(index > 0 ? ",\n" : "\n").append(indent.repeat(depth));
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
                        if (c < 0x20 || (ensureAscii && c > 0x7F)) {
                            out.append(String.format(java.util.Locale.ROOT, "\\u%04x", (int) c));
                        } else {
                            out.append(c);
                        }
                    }
                }
            }
            out.append('"');
        }

        /** Python's float repr: "1.0", "0.5", "1e+20", "NaN", "Infinity". */
        private static String pythonFloat(double d) {
            if (Double.isNaN(d)) {
                return "NaN";
            }
            if (Double.isInfinite(d)) {
                return d > 0 ? "Infinity" : "-Infinity";
            }
            if (d == Math.rint(d) && Math.abs(d) < 1e16) {
                return String.format(java.util.Locale.ROOT, "%.1f", d);
            }
            String s = Double.toString(d);
            int e = s.indexOf('E');
            if (e < 0) {
                return s;
            }
            String mantissa = s.substring(0, e);
            if (mantissa.endsWith(".0")) {
                mantissa = mantissa.substring(0, mantissa.length() - 2);
            }
            int exp = Integer.parseInt(s.substring(e + 1));
            return mantissa + "e" + (exp < 0 ? "-" : "+") + (Math.abs(exp) < 10 ? "0" : "") + Math.abs(exp);
        }
    }
}
