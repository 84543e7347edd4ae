package io.moemesh.model.chat;

import java.util.Set;

/**
 * The names Jinja knows, as transformers' environment has them (jinja2 3.1: filters.py FILTERS, tests.py TESTS,
 * defaults.py DEFAULT_NAMESPACE; transformers' chat_template_utils.py adds the filter {@code tojson} and the globals
 * {@code raise_exception} and {@code strftime_now}): {@link TemplateCheck} refuses any other filter, test or
 * function name when a template is loaded, and those of Jinja's that this engine lacks.
 */
final class JinjaNames {
    /** jinja2/filters.py FILTERS, and transformers' tojson (which replaces jinja2's). */
    static final Set<String> FILTERS = Set.of("abs", "attr", "batch", "capitalize", "center", "count", "d",
            "default", "dictsort", "e", "escape", "filesizeformat", "first", "float", "forceescape", "format",
            "groupby", "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min",
            "pprint", "random", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr",
            "slice", "sort", "string", "striptags", "sum", "title", "tojson", "trim", "truncate", "unique", "upper",
            "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr");
    /** jinja2/tests.py TESTS. */
    static final Set<String> TESTS = Set.of("odd", "even", "divisibleby", "defined", "undefined", "filter", "test",
            "none", "boolean", "false", "true", "integer", "float", "lower", "upper", "string", "mapping", "number",
            "sequence", "iterable", "callable", "sameas", "escaped", "in", "==", "eq", "equalto", "!=", "ne", ">",
            "gt", "greaterthan", ">=", "ge", "<", "lt", "lessthan", "<=", "le");
    /** jinja2/defaults.py DEFAULT_NAMESPACE: the functions every Jinja template can call. */
    static final Set<String> GLOBALS = Set.of("range", "dict", "lipsum", "cycler", "joiner", "namespace");
    /** The functions this engine has: Jinja's globals Jinjava renders as Jinja does, and transformers' own. */
    static final Set<String> SUPPORTED_FUNCTIONS = Set.of("range", "namespace", "raise_exception", "strftime_now");
    /**
     * {@code caller()}, which Jinja defines inside a macro that a {@code {% call %}} block invokes (Jinjava
     * likewise).
     */
    static final String CALLER = "caller";

    private JinjaNames() {
    }
}
