package io.moemesh.model.chat;

import com.hubspot.jinjava.el.JinjavaELContext;
import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import com.hubspot.jinjava.interpret.Context;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.OutputTooBigException;
import com.hubspot.jinjava.lib.tag.ForTag;
import com.hubspot.jinjava.lib.tag.MacroTag;
import com.hubspot.jinjava.tree.ExpressionNode;
import com.hubspot.jinjava.tree.Node;
import com.hubspot.jinjava.tree.TagNode;
import com.hubspot.jinjava.tree.parse.ExpressionToken;
import com.hubspot.jinjava.tree.parse.TagToken;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import jinjava.de.odysseus.el.tree.Bindings;
import jinjava.de.odysseus.el.tree.FunctionNode;
import jinjava.de.odysseus.el.tree.IdentifierNode;
import jinjava.de.odysseus.el.tree.Tree;
import jinjava.de.odysseus.el.tree.TreeBuilderException;
import jinjava.de.odysseus.el.tree.impl.ast.AstBoolean;
import jinjava.de.odysseus.el.tree.impl.ast.AstEval;
import jinjava.de.odysseus.el.tree.impl.ast.AstFunction;
import jinjava.de.odysseus.el.tree.impl.ast.AstIdentifier;
import jinjava.de.odysseus.el.tree.impl.ast.AstNode;
import jinjava.de.odysseus.el.tree.impl.ast.AstNull;
import jinjava.de.odysseus.el.tree.impl.ast.AstNumber;
import jinjava.de.odysseus.el.tree.impl.ast.AstString;
import jinjava.javax.el.ELException;

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
 *   <li>a filter or test Jinja does not have ({@code x|render}, one of Jinjava's own, and {@code x is
 *       nonexistenttest}: jinja2 refuses both at compile time, Jinjava rendered them), or one of Jinja's this engine
 *       lacks (the tests {@code escaped}, {@code filter}, {@code test});</li>
 *   <li>a call of a function that is neither one of Jinja's globals this engine has ({@code range},
 *       {@code namespace}), transformers' ({@code raise_exception}, {@code strftime_now}), {@code caller} nor a
 *       macro of the template: Jinja's {@code dict}, {@code cycler}, {@code joiner}, {@code lipsum}, which Jinjava
 *       lacks, Jinjava's own ({@code today}, ...), or a name no request can define (its variables are JSON values,
 *       never functions), which would fail wherever it is called;</li>
 *   <li>a macro signature Jinjava splits otherwise than Jinja (a default holding a comma inside a string, a dict
 *       or a nested list, or a ')');</li>
 *   <li>a part of an expression made of literals only that fails ({@code 'abc'[::0]}, {@code '-' * 2.5},
 *       {@code 1 / 0}, a repetition longer than any output): it would fail whatever the request, so the template,
 *       not the request, is at fault.</li>
 * </ul>
 * {@link #check} also tells which variables the template reads, for the special-token check of
 * {@link ChatTemplate}.
 */
final class TemplateCheck {
    /** Tags whose expressions are checked here, and those that have none. */
    private static final Set<String> TAGS = Set.of("if", "elif", "else", "for", "set", "macro", "call", "raw",
            "break", "continue");
    /** Jinja's other statements (jinja2/parser.py _statement_keywords) and transformers' generation tag. */
    private static final Set<String> OTHER_JINJA_TAGS = Set.of("block", "extends", "include", "import", "from",
            "with", "autoescape", "filter", "print", "generation");
    private static final int MAX_QUOTED = 200;

    private final String source;
    private final Context globals;
    private final JinjavaELContext elContext;
    private final Bindings constants = new Bindings(null, null, JinjaOverrides.CONVERTER);
    /** Where in the source the last node visited was found: nodes are visited in source order. */
    private int cursor;
    /** The line of the node being checked. */
    private int line;
    private final Set<String> read = new TreeSet<>();
    private final Set<String> assigned = new TreeSet<>();
    private final Set<String> macros = new TreeSet<>();
    private final List<Call> calls = new ArrayList<>();

    /** A function called at {@code line} by the node {@code at}. */
    private record Call(String name, int line, Node at) {
    }

    private TemplateCheck(String source, JinjavaInterpreter interpreter) {
        this.source = source;
        this.globals = interpreter.getContext();
        this.elContext = new JinjavaELContext(interpreter, new JinjavaInterpreterResolver(interpreter));
    }

    /**
     * @param source      the template's source
     * @param root        the template as Jinjava parsed it (its tag structure is already known to be sound)
     * @param interpreter the current interpreter of the environment (its filters and tests; literal parts of
     *                    expressions are evaluated with it)
     * @return the variables the template reads and never assigns itself ({@code set}, loop and macro variables)
     * @throws ChatTemplateException naming the first construct refused
     */
    static Set<String> check(String source, Node root, JinjavaInterpreter interpreter) {
        TemplateCheck check = new TemplateCheck(source, interpreter);
        check.walk(root);
        check.checkCalls();
        Set<String> free = new TreeSet<>(check.read);
        free.removeAll(check.assigned);
        return free;
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
            case "if", "elif", "call" -> expression(helpers, t);
            case "for" -> expression(loopExpression(t), t);
            case "set" -> {
                int eq = helpers.indexOf('=');
                for (String target : (eq >= 0 ? helpers.substring(0, eq) : helpers).split(",")) {
                    assigned.add(target.strip());
                }
                if (eq >= 0) {
                    expression("[" + helpers.substring(eq + 1) + "]", t); // SetTag's form (a, b = 1, 2)
                }
            }
            case "macro" -> macro(helpers, t);
            default -> {
            }
        }
    }

    /** What {@code for ... in} iterates, as ForTag splits it off; its loop variables are assigned. */
    private String loopExpression(TagNode t) {
        try {
            var split = ((ForTag) t.getTag()).getLoopVarsAndExpression((TagToken) t.getMaster());
            split.getLeft().forEach(v -> assigned.add(v.strip()));
            return split.getRight();
        } catch (RuntimeException e) {
            refuse(t, "the loop '" + quoted(t.getHelpers().strip()) + "'", "for NAME[, NAME...] in EXPRESSION");
            throw e;
        }
    }

    /**
     * A signature {@code name(a, b=default, ...)}: Jinja's grammar as a whole, and each default as MacroTag
     * evaluates it. MacroTag splits the arguments at every comma and joins the pieces of a list default back with
     * ", " (cut at the first ')'); a signature it would read otherwise than Jinja (a comma inside a string, a dict
     * or a nested list, a ')' inside a default) is refused.
     */
    private void macro(String helpers, TagNode t) {
        expression(helpers, t);
        Matcher m = MacroTag.MACRO_PATTERN.matcher(helpers);
        if (!m.matches()) {
            refuse(t, "the macro signature '" + quoted(helpers) + "'",
                    "name(arg, arg=default, ...) with no ')' inside a default");
        }
        macros.add(m.group(1));
        List<String[]> jinja = MacroArguments.jinja(m.group(2));
        if (!MacroArguments.readAlike(jinja, MacroArguments.jinjava(m.group(2)))) {
            refuse(t, "the macro signature '" + quoted(helpers) + "'", "defaults this engine splits as Jinja does: "
                    + "no comma inside a string, a dict or a nested list");
        }
        for (String[] arg : jinja) {
            assigned.add(arg[0]);
            if (arg[1] != null) {
                expression(arg[1], t);
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
        } catch (ELException e) {
            // a parse step of Jinjava's that throws instead of failing with a position
            throw new ChatTemplateException("TemplateSyntaxError: cannot parse the expression '" + quoted(expr.strip())
                    + "' (line " + line + "): " + e.getMessage(), e);
        }
        for (IdentifierNode id : tree.getIdentifierNodes()) {
            identifier(id.getName(), at);
        }
        for (FunctionNode f : tree.getFunctionNodes()) {
            calls.add(new Call(f.getName(), line, at));
        }
        AstNode root = (AstNode) tree.getRoot();
        fold(root instanceof AstEval eval ? eval.getChild(0) : root, expr);
    }

    private void identifier(String name, Node at) {
        if (name.startsWith(JinjaParser.EXPTEST_PREFIX)) {
            String test = name.substring(JinjaParser.EXPTEST_PREFIX.length());
            if (!JinjaNames.TESTS.contains(test)) {
                throw new ChatTemplateException("TemplateAssertionError: No test named '" + test + "' (line " + line
                        + ").");
            }
            if (globals.getExpTest(test) == null) {
                refuse(at, "the test '" + test + "'", "a test this engine has");
            }
        } else if (name.startsWith(JinjaParser.FILTER_PREFIX)) {
            String filter = name.substring(JinjaParser.FILTER_PREFIX.length());
            if (!JinjaNames.FILTERS.contains(filter)) {
                // Jinja's words; Jinjava's own filters (render, which re-renders its input, ...) are no Jinja's
                throw new ChatTemplateException("TemplateAssertionError: No filter named '" + filter + "'.");
            }
            if (globals.getFilter(filter) == null) {
                refuse(at, "the filter '" + filter + "'", "a filter this engine has");
            }
        } else {
            read.add(name);
        }
    }

    /** Every function called is one this engine has or a macro of the template (wherever it is defined). */
    private void checkCalls() {
        for (Call c : calls) {
            String name = c.name();
            if (macros.contains(name) || JinjaNames.SUPPORTED_FUNCTIONS.contains(name)
                    || JinjaNames.CALLER.equals(name)) {
                continue;
            }
            line = c.line();
            refuse(c.at(), "the function '" + name + "'", JinjaNames.GLOBALS.contains(name)
                    ? "one of " + new TreeSet<>(JinjaNames.SUPPORTED_FUNCTIONS) + " or a macro: this engine lacks "
                    + "Jinja's " + name + "()"
                    : "one of the functions " + new TreeSet<>(JinjaNames.SUPPORTED_FUNCTIONS) + " or a macro of the "
                    + "template " + macros + ": Jinja would fail with UndefinedError wherever it is called");
        }
    }

    /**
     * Evaluates each largest part of the expression made of literals only (no variable, no function; filters and
     * tests are variables to the parser): one that fails would fail whatever the request, the template's fault.
     * Jinja folds such constants when it compiles a template, and raises their errors only where they are
     * reached: here they are refused when the template loads, rather than failing requests one by one.
     */
    private void fold(AstNode node, String expr) {
        if (isConstant(node)) {
            if (!(node instanceof AstString || node instanceof AstNumber || node instanceof AstBoolean
                    || node instanceof AstNull)) {
                evaluate(node, expr);
            }
            return;
        }
        for (AstNode child : children(node)) {
            fold(child, expr);
        }
    }

    private static boolean isConstant(AstNode node) {
        if (node instanceof AstIdentifier || node instanceof AstFunction) {
            return false;
        }
        for (AstNode child : children(node)) {
            if (!isConstant(child)) {
                return false;
            }
        }
        return true;
    }

    private static List<AstNode> children(AstNode node) {
        List<AstNode> out = new ArrayList<>();
        for (int i = 0; i < node.getCardinality(); i++) {
            if (node.getChild(i) instanceof AstNode child) {
                out.add(child);
            }
        }
        if (node instanceof JinjaParser.Operands o) {
            out.addAll(o.operands());
        }
        return out;
    }

    private void evaluate(AstNode node, String expr) {
        try {
            node.eval(constants, elContext);
        } catch (RuntimeException e) {
            String why = e.getMessage();
            for (Throwable t = e; t != null; t = t.getCause()) {
                if (t instanceof PythonError python) {
                    why = python.type() + ": " + python.getMessage();
                    break;
                }
                if (t instanceof OutputTooBigException big) {
                    why = "its value is longer than any render may output (" + big.getMessage() + ")";
                    break;
                }
            }
            String part = PythonOperators.structure(node, constants);
            throw new ChatTemplateException("TemplateError: the expression '" + quoted(expr.strip()) + "' (line "
                    + line + ") fails whatever the conversation, " + (part == null ? "a part of it"
                    : "its part " + quoted(part)) + " being made of literals only: " + why, e);
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
