package io.moemesh.model.chat;

import com.hubspot.jinjava.objects.collections.PyList;

/**
 * A tuple literal's value ({@code (a, b)}): Jinjava's (an unmodifiable list, which its for loop unpacks), told
 * apart so that it prints as Python prints a tuple, {@code (a, b)} and {@code (a,)}, not as a list.
 */
final class PythonTuple extends PyList {
    PythonTuple(PyList items) {
        super(items.toList());
    }
}
