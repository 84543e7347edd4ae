package io.moemesh.model.chat;

/**
 * An exception Python (or Jinja) raises while a template renders on the values it was given ({@code TypeError},
 * {@code ValueError}, {@code ZeroDivisionError}, Jinja's {@code UndefinedError}): thrown inside Jinjava, which wraps
 * it, and dug out of the cause chain by {@link ChatTemplate}, which reports it as transformers would show it,
 * {@code "<type>: <message>"}. An expression that raises one whatever the request (made of literals only) is
 * refused when the template is loaded ({@link TemplateCheck}).
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

    static PythonError zeroDivision(String message) {
        return new PythonError("ZeroDivisionError", message);
    }

    /** jinja2's {@code UndefinedError}: arithmetic or an order comparison on an undefined value. */
    static PythonError undefined(String message) {
        return new PythonError("UndefinedError", message);
    }

    /** Python's exception class name, e.g. "TypeError". */
    String type() {
        return type;
    }
}
