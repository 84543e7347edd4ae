package io.moemesh.model.chat;

import com.hubspot.jinjava.objects.collections.PyList;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import jinjava.de.odysseus.el.tree.Bindings;
import jinjava.de.odysseus.el.tree.impl.ast.AstNode;
import jinjava.de.odysseus.el.tree.impl.ast.AstRightValue;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.PropertyNotFoundException;

/**
 * Python's {@code sequence[start:stop:step]} ({@code slice.indices}: negative bounds count from the end, bounds
 * past either end are clamped, a negative step walks backwards, step 0 is a ValueError), on lists and on strings
 * by code point as Python's str is indexed. Jinjava's own range bracket has no step, indexes strings by UTF-16
 * unit (so it could cut a surrogate pair in two) and fails on a start before the beginning.
 */
final class PythonSlice extends AstRightValue {
    private final AstNode base;
    private final AstNode start;
    private final AstNode stop;
    private final AstNode step;

    PythonSlice(AstNode base, AstNode start, AstNode stop, AstNode step) {
        this.base = base;
        this.start = start;
        this.stop = stop;
        this.step = step;
    }

    /**
     * The slice, or Undefined (null) where Python raises a TypeError (a bound that is no int, a value that cannot
     * be sliced): jinja2's {@code Environment.getitem} turns that TypeError into an Undefined value. A zero step's
     * ValueError is raised.
     */
    @Override
    public Object eval(Bindings bindings, ELContext context) {
        Object value = PythonValues.unwrap(base.eval(bindings, context));
        if (value == null) {
            // As Jinjava's range bracket: slicing an undefined value is Undefined (a warning, not an error)
            throw new PropertyNotFoundException("cannot slice an undefined value: " + base);
        }
        try {
            return slice(value, index(start, bindings, context), index(stop, bindings, context),
                    index(step, bindings, context));
        } catch (NotSubscriptable e) {
            return null;
        }
    }

    private static Object slice(Object value, Long from, Long to, Long by) {
        long stride = by == null ? 1 : by;
        if (stride == 0) {
            throw PythonError.valueError("slice step cannot be zero");
        }
        return switch (value) {
            case CharSequence s -> {
                int[] codePoints = s.toString().codePoints().toArray();
                StringBuilder out = new StringBuilder();
                for (int i : indices(codePoints.length, from, to, stride)) {
                    out.appendCodePoint(codePoints[i]);
                }
                yield out.toString();
            }
            case List<?> l -> pick(l, from, to, stride);
            case Collection<?> c -> pick(new ArrayList<>(c), from, to, stride);
            case Object[] a -> pick(Arrays.asList(a), from, to, stride);
            default -> throw new NotSubscriptable(); // a dict (unhashable slice), None, a number, ...
        };
    }

    private static PyList pick(List<?> list, Long from, Long to, long stride) {
        List<Object> out = new ArrayList<>();
        for (int i : indices(list.size(), from, to, stride)) {
            out.add(list.get(i));
        }
        return new PyList(out);
    }

    /** A bound: null when left out or None; an int (bool included) otherwise, as Python's __index__ requires. */
    private static Long index(AstNode node, Bindings bindings, ELContext context) {
        if (node == null) {
            return null;
        }
        Object v = PythonValues.unwrap(node.eval(bindings, context));
        return switch (v) {
            case PyNone n -> null;
            case Boolean b -> b ? 1L : 0L;
            case Long l -> l;
            case Integer i -> (long) i;
            case Short s -> (long) s;
            case Byte b -> (long) b;
            case BigInteger i -> i.max(BigInteger.valueOf(Long.MIN_VALUE + 1))
                    .min(BigInteger.valueOf(Long.MAX_VALUE)).longValue();
            case null, default -> throw new NotSubscriptable(); // Python: a TypeError on a bound that is no int
        };
    }

    /** Python's TypeError of a subscript, which jinja2 turns into Undefined. */
    private static final class NotSubscriptable extends RuntimeException {
        NotSubscriptable() {
            super(null, null, false, false);
        }
    }

    /** The positions {@code slice(from, to, stride).indices(length)} selects, in order. */
    static int[] indices(int length, Long from, Long to, long stride) {
        long lower = stride < 0 ? -1 : 0;
        long upper = stride < 0 ? length - 1 : length;
        long first = from == null ? (stride < 0 ? upper : lower) : clamp(from, length, lower, upper);
        long last = to == null ? (stride < 0 ? lower : upper) : clamp(to, length, lower, upper);
        // any step beyond the length picks just the first position
        long s = Math.max(-(length + 1L), Math.min(length + 1L, stride));
        long count = s > 0 ? (last > first ? (last - first + s - 1) / s : 0)
                : (first > last ? (first - last - s - 1) / -s : 0);
        int[] out = new int[(int) count];
        for (int k = 0; k < count; k++) {
            out[k] = (int) (first + k * s);
        }
        return out;
    }

    private static long clamp(long bound, int length, long lower, long upper) {
        if (bound < 0) {
            return Math.max(lower, bound + length);
        }
        return Math.min(bound, upper);
    }

    @Override
    public void appendStructure(StringBuilder b, Bindings bindings) {
        base.appendStructure(b, bindings);
        b.append('[');
        AstNode[] parts = {start, stop, step};
        for (int i = 0; i < parts.length; i++) {
            b.append(i == 0 ? "" : ":");
            if (parts[i] != null) {
                parts[i].appendStructure(b, bindings);
            }
        }
        b.append(']');
    }

    @Override
    public int getCardinality() {
        return 4;
    }

    @Override
    public AstNode getChild(int i) {
        return switch (i) {
            case 0 -> base;
            case 1 -> start;
            case 2 -> stop;
            case 3 -> step;
            default -> null;
        };
    }

    @Override
    public String toString() {
        return "[::]";
    }
}
