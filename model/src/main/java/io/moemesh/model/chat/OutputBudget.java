package io.moemesh.model.chat;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.OutputTooBigException;
import java.math.BigInteger;
import java.util.Collection;
import java.util.Map;

/**
 * The size budget of one render: the characters its output may have (Jinjava's {@code maxOutputSize} of the
 * render's config: {@link ChatTemplate#render}'s limit, at most {@link #MAX_OUTPUT}). Jinjava checks the output only
 * once a value is printed, so the values a template builds before that are bounded here too, each where it is made:
 * a repetition ({@code content * n}, {@code [content] * n}: {@link PythonOperators}), a string concatenation
 * ({@code +}), Python's {@code str()}/{@code repr()} of a list or dict, {@code tojson} and {@code join}. A value
 * over the budget fails with Jinjava's {@link OutputTooBigException}, which {@link ChatTemplate} reports as the
 * conversation's rendered chat being too long ({@link RenderedChatTooLongException}): a count or text from the
 * request that would build a value longer than the output may be is refused before the memory is taken.
 */
final class OutputBudget {
    /** The most characters any render may output (and build in one value), whatever limit its caller gives. */
    static final long MAX_OUTPUT = 64L * 1024 * 1024;
    /** Nested deeper than this, an estimate stops descending (a list that holds itself). */
    private static final int MAX_DEPTH = 100;
    /** What an object with no Python repr of its own (a function, Jinjava's loop) is counted as. */
    private static final long OTHER = 16;

    private OutputBudget() {
    }

    /** The characters the current render may output: its config's limit, {@link #MAX_OUTPUT} outside a render. */
    static long limit() {
        return JinjavaInterpreter.getCurrentMaybe().map(i -> i.getConfig().getMaxOutputSize())
                .filter(max -> max > 0 && max < MAX_OUTPUT).orElse(MAX_OUTPUT);
    }

    /** @throws OutputTooBigException if a value of {@code size} characters would pass the current render's limit */
    static void check(long size) {
        long limit = limit();
        if (size > limit) {
            throw new OutputTooBigException(limit, size);
        }
    }

    /**
     * The characters of Python's {@code repr(value)}, estimated from above for numbers (a float counts its repr),
     * exact for strings, lists, tuples and dicts of those; once the count passes {@code cap} it stops and returns
     * what it has, so that the cost of estimating a huge value is bounded by the budget too.
     */
    static long reprSize(Object value, long cap) {
        return reprSize(value, cap, 0);
    }

    /**
     * The characters the items of {@code list} take inside its repr, separators included: what each repetition of
     * the list adds to {@code repr(list * n)}. Stops past {@code cap} as {@link #reprSize(Object, long)} does.
     */
    static long itemsSize(Collection<?> list, long cap) {
        return itemsSize(list, cap, 0);
    }

    private static long itemsSize(Collection<?> list, long cap, int depth) {
        long n = 0;
        for (Object o : list) {
            n += reprSize(o, cap - n, depth + 1) + 2; // ", "
            if (n > cap) {
                return n;
            }
        }
        return n;
    }

    private static long reprSize(Object value, long cap, int depth) {
        if (depth > MAX_DEPTH) {
            return 3; // "..."
        }
        return switch (PythonValues.unwrap(value)) {
            case null -> 9; // Undefined
            case CharSequence s -> s.length() + 2L; // quoted (escapes not counted: at least this)
            case Character c -> 3;
            case Boolean b -> 5;
            case PyNone n -> 4;
            case Long l -> Long.toString(l).length();
            case Integer i -> Integer.toString(i).length();
            case BigInteger i -> i.bitLength() * 3L / 10 + 2;
            case Number n -> PythonValues.str(n).length();
            case Collection<?> c -> 2 + itemsSize(c, cap, depth);
            case Map<?, ?> m -> {
                long n = 2;
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    n += reprSize(e.getKey(), cap - n, depth + 1) + reprSize(e.getValue(), cap - n, depth + 1) + 4;
                    if (n > cap) {
                        break;
                    }
                }
                yield n;
            }
            case Map.Entry<?, ?> e -> reprSize(e.getKey(), cap, depth + 1) + reprSize(e.getValue(), cap, depth + 1)
                    + 4;
            case Object[] a -> 2 + itemsSize(java.util.Arrays.asList(a), cap, depth);
            default -> OTHER;
        };
    }
}
