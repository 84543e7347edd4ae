package io.moemesh.model.chat;

import com.hubspot.jinjava.interpret.Context;
import com.hubspot.jinjava.lib.tag.ForTag;
import com.hubspot.jinjava.lib.tag.MacroTag;
import com.hubspot.jinjava.tree.ExpressionNode;
import com.hubspot.jinjava.tree.Node;
import com.hubspot.jinjava.tree.TagNode;
import com.hubspot.jinjava.tree.parse.ExpressionToken;
import com.hubspot.jinjava.tree.parse.TagToken;
import java.util.Set;
import java.util.regex.Matcher;
import jinjava.de.odysseus.el.tree.IdentifierNode;
import jinjava.de.odysseus.el.tree.Tree;
import jinjava.de.odysseus.el.tree.TreeBuilderException;

/**
 * Parses every expression of a template when it is loaded, as Jinja compiles a whole template before rendering
 * it: Jinjava parses an expression only when the render reaches it, so without this a template Jinjava cannot
 * parse ({@code 1 < 2 < 3} before the chained comparison, a {@code {{ ... }}} holding {@code }}}) loaded fine and
 * then failed every request. Refused here, each naming the construct and its line:
 * <ul>
 *   <li>an expression {@link JinjaParser} cannot parse, in {@code {{ }}}, {@code if}/{@code elif},
 *       {@code for ... in}, {@code set}, a macro's signature and defaults, {@code call};</li>
 *   <li>a tag other than those (and {@code else}, {@code raw}, and {@code break}/{@code continue}, the
 *       loopcontrols extension transformers enables): Jinja does not know Jinjava's other tags ({@code do},
 *       {@code print}, {@code cycle}, {@code unless}, ...), and Jinja's own others ({@code with}, {@code block},
 *       {@code include}, ...) are not rendered as Jinja renders them;</li>
 *   <li>a test Jinja does not have ({@code x is nonexistenttest}: jinja2 fails on it, Jinjava answered false),
 *       or one of Jinja's that this engine lacks ({@code escaped}, {@code filter}, {@code test}).</li>
 * </ul>
 */
final class TemplateCheck {
    /** jinja2/tests.py TESTS. */
    private static final Set<String> JINJA_TESTS = Set.of("odd", "even", "divisibleby", "defined", "undefined",
            "filter", "test", "none", "boolean", "false", "true", "integer", "float", "lower", "upper", "string",
            "mapping", "number", "sequence", "iterable", "callable", "sameas", "escaped", "in", "==", "eq", "equalto",
            "!=", "ne", ">", "gt", "greaterthan", ">=", "ge", "<", "lt", "lessthan", "<=", "le");
    /** Tags whose expressions are checked here, and those that have none. */
    private static final Set<String> TAGS = Set.of("if", "elif", "else", "for", "set", "macro", "call", "raw",
            "break", "continue");
    /** Jinja's other statements (jinja2/parser.py _statement_keywords) and transformers' generation tag. */
    private static final Set<String> OTHER_JINJA_TAGS = Set.of("block", "extends", "include", "import", "from",
            "with", "autoescape", "filter", "print", "generation");
    private static final int MAX_QUOTED = 200;

    private final String source;
    private final Context globals;
    /** Where in the source the last node visited was found: nodes are visited in source order. */
    private int cursor;
    /** The line of the node being checked. */
    private int line;

    private TemplateCheck(String source, Context globals) {
        this.source = source;
        this.globals = globals;
    }

    /**
     * @param source  the template's source
     * @param root    the template as Jinjava parsed it (its tag structure is already known to be sound)
     * @param globals the environment's filters and tests
     * @throws ChatTemplateException naming the first construct refused
     */
    static void check(String source, Node root, Context globals) {
        new TemplateCheck(source, globals).walk(root);
    }

    private void walk(Node node) {
        for (Node child : node.getChildren()) {
            locate(child);
            if (child instanceof ExpressionNode e) {
                String expr = ((ExpressionToken) e.getMaster()).getExpr();
                if (expr.isBlank()) {
                    refuse(child, "an empty expression {{ }}", "an expression to print");
                }
                expression(expr, child);
            } else if (child instanceof TagNode t) {
                tag(t);
            }
            walk(child);
        }
    }

    /** The expressions of a tag, split off as Jinjava's tag splits them when it renders. */
    private void tag(TagNode t) {
        String name = t.getName();
        String helpers = t.getHelpers().strip();
        if (!TAGS.contains(name)) {
            if (!OTHER_JINJA_TAGS.contains(name)) {
                throw new ChatTemplateException("TemplateSyntaxError: Encountered unknown tag '" + name + "' (line "
                        + line + ").");
            }
            refuse(t, "the tag '" + name + "'", "one of " + TAGS + ": this engine does not render it as Jinja does");
        }
        switch (name) {
            case "if", "elif" -> expression(helpers, t);
            case "for" -> expression(loopExpression(t), t);
            case "set" -> {
                int eq = helpers.indexOf('=');
                if (eq >= 0) {
                    expression("[" + helpers.substring(eq + 1) + "]", t); // SetTag's form (a, b = 1, 2)
                }
            }
            case "macro" -> macro(helpers, t);
            case "call" -> expression(helpers, t);
            default -> {
            }
        }
    }

    /** What {@code for ... in} iterates, as ForTag splits it off. */
    private String loopExpression(TagNode t) {
        try {
            return ((ForTag) t.getTag()).getLoopVarsAndExpression((TagToken) t.getMaster()).getRight();
        } catch (RuntimeException e) {
            refuse(t, "the loop '" + quoted(t.getHelpers().strip()) + "'", "for NAME[, NAME...] in EXPRESSION");
            throw e;
        }
    }

    /**
     * A signature {@code name(a, b=default, ...)}: Jinja's grammar as a whole, and each default as MacroTag
     * evaluates it, split at every comma and cut at the first ')' (a default holding either is refused, as
     * Jinjava would read it otherwise).
     */
    private void macro(String helpers, TagNode t) {
        expression(helpers, t);
        Matcher m = MacroTag.MACRO_PATTERN.matcher(helpers);
        if (!m.matches()) {
            refuse(t, "the macro signature '" + quoted(helpers) + "'",
                    "name(arg, arg=default, ...) with no ')' inside a default");
        }
        for (String arg : m.group(2).split(",")) {
            int eq = arg.indexOf('=');
            if (eq >= 0) {
                expression(arg.substring(eq + 1), t);
            }
        }
    }

    /**
     * Moves the cursor to the node's text and remembers its line there: Jinjava's own line numbers leave out the
     * line breaks that trim_blocks removes.
     */
    private void locate(Node node) {
        int at = source.indexOf(node.getMaster().getImage(), cursor);
        if (at >= 0) {
            line = 1 + (int) source.substring(0, at).chars().filter(c -> c == '\n').count();
            cursor = at + 1;
        } else {
            line = node.getLineNumber();
        }
    }

    private void expression(String expr, Node at) {
        Tree tree;
        try {
            tree = JinjaParser.parse(expr);
        } catch (TreeBuilderException e) {
            // positions count from after "#{"
            throw new ChatTemplateException("TemplateSyntaxError: cannot parse the expression '" + quoted(expr.strip())
                    + "' (line " + line + "): at position " + Math.max(0, e.getPosition() - 2)
                    + " found " + e.getEncountered() + ", expected " + e.getExpected(), e);
        }
        for (IdentifierNode id : tree.getIdentifierNodes()) {
            String name = id.getName();
            if (name.startsWith(JinjaParser.EXPTEST_PREFIX)) {
                String test = name.substring(JinjaParser.EXPTEST_PREFIX.length());
                if (!JINJA_TESTS.contains(test)) {
                    throw new ChatTemplateException("TemplateAssertionError: No test named '" + test + "' (line "
                            + line + ").");
                }
                if (globals.getExpTest(test) == null) {
                    refuse(at, "the test '" + test + "'", "a test this engine has");
                }
            }
        }
    }

    private void refuse(Node at, String what, String expected) {
        throw new ChatTemplateException("TemplateSyntaxError: unsupported construct " + what + " (line " + line
                + "; expected " + expected + "): " + quoted(at.getMaster().getImage()));
    }

    private static String quoted(String s) {
        return s.length() <= MAX_QUOTED ? s : s.substring(0, MAX_QUOTED) + "…";
    }
}
