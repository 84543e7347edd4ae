package io.moemesh.model.chat;

import com.hubspot.jinjava.objects.serialization.PyishSerializable;
import com.hubspot.jinjava.util.HasObjectTruthValue;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Python's {@code None} inside a template, distinct from Java's null, which Jinjava uses for an undefined value.
 * Jinja keeps the two apart ({@code None is defined}, an undefined value {@code is not none},
 * {@code None|default(x)} is None: jinja2/tests.py {@code test_defined}/{@code test_none}, filters.py
 * {@code do_default}); Jinjava cannot, so {@link ChatTemplate} passes every None it hands to a template
 * ({@code tools}, {@code documents}, null contents, nulls inside variables) and the literals {@code none} /
 * {@code None} as this object, and {@link JinjaEnvironment} registers the tests, filters and operators that look
 * at it. Like Python's None it is falsy, prints {@code None}, is JSON {@code null}, equals only itself, and
 * iterating over it fails ({@code TypeError: 'NoneType' object is not iterable}: implemented as an
 * {@link Iterator} that throws, because Jinjava's for loop and {@code length}/{@code list}/{@code join} filters
 * would otherwise treat any object as a one-element sequence).
 */
final class PyNone implements HasObjectTruthValue, PyishSerializable, Iterator<Object> {
    static final PyNone NONE = new PyNone();

    private PyNone() {
    }

    /** {@code value} with every null, at any depth of maps and lists, replaced by {@link #NONE}. */
    static Object of(Object value) {
        return switch (value) {
            case null -> NONE;
            case Map<?, ?> m -> {
                Map<Object, Object> out = new LinkedHashMap<>();
                m.forEach((k, v) -> out.put(k, of(v)));
                yield out;
            }
            case Collection<?> c -> {
                List<Object> out = new ArrayList<>(c.size());
                c.forEach(v -> out.add(of(v)));
                yield out;
            }
            default -> value;
        };
    }

    @Override
    public boolean getObjectTruthValue() {
        return false;
    }

    @Override
    @SuppressWarnings("unchecked")
    public <T extends Appendable & CharSequence> T appendPyishString(T appendable) throws IOException {
        return (T) appendable.append("None");
    }

    @Override
    public String toString() {
        return "None";
    }

    @Override
    public boolean hasNext() {
        throw PythonError.typeError("'NoneType' object is not iterable");
    }

    @Override
    public Object next() {
        throw PythonError.typeError("'NoneType' object is not iterable");
    }
}
