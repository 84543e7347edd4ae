package io.moemesh.model.chat;

/**
 * An exception Python raises while a template renders ({@code TypeError}, {@code ValueError}): thrown inside
 * Jinjava, which wraps it, and dug out of the cause chain by {@link ChatTemplate}, which reports it as transformers
 * would show it, {@code "<type>: <message>"}.
 *
 * @see PyNone
 */
final class PythonError extends RuntimeException {
    private final String type;

    private PythonError(String type, String message) {
        super(message, null, false, false);
        this.type = type;
    }

    static PythonError typeError(String message) {
        return new PythonError("TypeError", message);
    }

    static PythonError valueError(String message) {
        return new PythonError("ValueError", message);
    }

    /** Python's exception class name, e.g. "TypeError". */
    String type() {
        return type;
    }
}
