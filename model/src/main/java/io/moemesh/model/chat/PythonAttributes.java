package io.moemesh.model.chat;

import java.beans.FeatureDescriptor;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

/**
 * Attributes and items of numbers, booleans and lists as Jinja reads them ({@code Environment.getattr} /
 * {@code getitem}: what Python cannot find is Undefined, no error), where Jinjava's bean resolver fails the render
 * ("Cannot resolve property"). Such values come with the request ({@code chat_template_kwargs}: a template's
 * {@code {% if thinking.enabled %}} given {@code "thinking": true} renders the else branch in Jinja), so a failure
 * here blamed the template for the request's value. Python's attributes of numbers ({@code real}, {@code imag},
 * {@code numerator}, {@code denominator}) are given; the names of their methods and of list methods are left to
 * Jinjava (this engine does not give bound methods as values); an integer index of a list is Jinjava's. Attributes
 * of strings and None are {@link PythonStringMethods}'; a dict's keys are Jinjava's map resolution.
 */
final class PythonAttributes extends ELResolver {
    private static final Pattern INDEX = Pattern.compile("-?[0-9]+");
    /** dir(int), dir(float) and dir(bool) methods, without the attributes given here. */
    private static final Set<String> NUMBER_METHODS = Set.of("as_integer_ratio", "bit_count", "bit_length",
            "conjugate", "from_bytes", "fromhex", "hex", "is_integer", "to_bytes");
    /** dir(list) (a tuple has count and index). */
    private static final Set<String> LIST_METHODS = Set.of("append", "clear", "copy", "count", "extend", "index",
            "insert", "pop", "remove", "reverse", "sort");

    @Override
    public Object getValue(ELContext context, Object base, Object property) {
        Object b = PythonArithmetic.py(base);
        if (PythonArithmetic.isInt(b) || PythonArithmetic.isFloat(b)) {
            if (property instanceof String name && NUMBER_METHODS.contains(name)) {
                return null;
            }
            context.setPropertyResolved(true);
            return property instanceof String name ? numberAttribute(b, name) : null;
        }
        if (b instanceof List<?>) {
            boolean index = property instanceof Number n && PythonArithmetic.isInt(n)
                    || property instanceof String s && INDEX.matcher(s.strip()).matches();
            if (index || property instanceof String name && LIST_METHODS.contains(name)) {
                return null;
            }
            context.setPropertyResolved(true); // l.foo, l['x'], l[1.5]: Undefined
        }
        return null;
    }

    /** {@code x.real} and the others Python's numbers have; Undefined for any other name. */
    private static Object numberAttribute(Object n, String name) {
        boolean isInt = PythonArithmetic.isInt(n);
        Object self = n instanceof Boolean bool ? (Object) (long) (bool ? 1 : 0) : n;
        return switch (name) {
            case "real" -> self;
            case "imag" -> isInt ? (Object) 0L : (Object) 0.0;
            case "numerator" -> isInt ? self : null;
            case "denominator" -> isInt ? (Object) 1L : null;
            default -> null;
        };
    }

    @Override
    public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
        return null;
    }

    @Override
    public Class<?> getType(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public void setValue(ELContext context, Object base, Object property, Object value) {
        // read-only
    }

    @Override
    public boolean isReadOnly(ELContext context, Object base, Object property) {
        return true;
    }

    @Override
    public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
        return null;
    }

    @Override
    public Class<?> getCommonPropertyType(ELContext context, Object base) {
        return null;
    }
}
