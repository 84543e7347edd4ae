package io.moemesh.model.chat;

import java.time.LocalDateTime;
import java.time.format.TextStyle;
import java.util.Locale;
import java.util.Map;

/**
 * The global functions transformers adds to its Jinja environment (chat_template_utils.py
 * {@code _compile_jinja_template}): {@code raise_exception(message)} and {@code strftime_now(format)}.
 */
final class TemplateFunctions {
    private TemplateFunctions() {
    }

    /**
     * A function as a value, which the template sees under the function's name as Jinja does (so that
     * {@code raise_exception is callable} and {@code is defined} hold): Jinjava calls functions by name, never
     * through a variable, so this value is only ever tested or printed.
     */
    record Function(String name) {
        @Override
        public String toString() {
            return "<function " + name + ">";
        }
    }

    /** The functions by name, as {@link ChatTemplate} puts them among a template's variables. */
    static final Map<String, Function> FUNCTIONS = Map.of("raise_exception",
            new Function("raise_exception"), "strftime_now", new Function("strftime_now"));

    /** Thrown by {@code raise_exception}; Jinjava wraps it, {@link ChatTemplate} digs it out of the cause chain. */
    static final class RaisedException extends RuntimeException {
        RaisedException(String message) {
            super(message, null, false, false);
        }
    }

    /** Jinja: {@code raise TemplateError(message)}. */
    static String raiseException(String message) {
        throw new RaisedException(message);
    }

    /** Python {@code datetime.now().strftime(format)} for the common directives (C locale names). */
    static String strftimeNow(String format) {
        return strftime(LocalDateTime.now(), format);
    }

    static String strftime(LocalDateTime t, String format) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < format.length(); i++) {
            char c = format.charAt(i);
            if (c != '%' || i + 1 >= format.length()) {
                out.append(c);
                continue;
            }
            char d = format.charAt(++i);
            boolean pad = true;
            // glibc's "%-d" drops the zero padding; templates for Llama 3.x use it.
            if (d == '-' && i + 1 < format.length()) {
                pad = false;
                d = format.charAt(++i);
            }
            int hour12 = t.getHour() % 12 == 0 ? 12 : t.getHour() % 12;
            switch (d) {
                case 'a' -> out.append(t.getDayOfWeek().getDisplayName(TextStyle.SHORT, Locale.ENGLISH));
                case 'A' -> out.append(t.getDayOfWeek().getDisplayName(TextStyle.FULL, Locale.ENGLISH));
                case 'b', 'h' -> out.append(t.getMonth().getDisplayName(TextStyle.SHORT, Locale.ENGLISH));
                case 'B' -> out.append(t.getMonth().getDisplayName(TextStyle.FULL, Locale.ENGLISH));
                case 'd' -> out.append(num(t.getDayOfMonth(), 2, pad));
                case 'm' -> out.append(num(t.getMonthValue(), 2, pad));
                case 'y' -> out.append(num(t.getYear() % 100, 2, pad));
                case 'Y' -> out.append(t.getYear());
                case 'H' -> out.append(num(t.getHour(), 2, pad));
                case 'I' -> out.append(num(hour12, 2, pad));
                case 'M' -> out.append(num(t.getMinute(), 2, pad));
                case 'S' -> out.append(num(t.getSecond(), 2, pad));
                case 'p' -> out.append(t.getHour() < 12 ? "AM" : "PM");
                case 'j' -> out.append(num(t.getDayOfYear(), 3, pad));
                case '%' -> out.append('%');
                default -> out.append('%').append(pad ? "" : "-").append(d);
            }
        }
        return out.toString();
    }

    private static String num(int v, int width, boolean pad) {
        String s = Integer.toString(v);
        return pad && s.length() < width ? "0".repeat(width - s.length()) + s : s;
    }
}
