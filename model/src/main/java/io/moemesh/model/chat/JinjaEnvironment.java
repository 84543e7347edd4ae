package io.moemesh.model.chat;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import com.hubspot.jinjava.interpret.Context;
import com.hubspot.jinjava.interpret.InterpreterFactory;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.expression.ExpressionStrategy;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import java.lang.reflect.Method;
import jinjava.javax.el.CompositeELResolver;
import jinjava.javax.el.ELResolver;
import jinjava.javax.el.ExpressionFactory;

/**
 * A Jinjava configured to behave like the Jinja environment of transformers' {@code apply_chat_template}
 * ({@code ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)}, keep_trailing_newline false; the
 * lstrip_blocks applied to the source by {@link JinjaLstripBlocks}), with Jinja's grammar and Python's semantics
 * where Jinjava's differ ({@link JinjaParser}, {@link JinjaOverrides}, {@link PyNone}).
 */
final class JinjaEnvironment {
    private static final InterpreterFactory INTERPRETERS = new PythonInterpreters();
    private static final ELResolver RESOLVER = resolver();

    private JinjaEnvironment() {
    }

    static Jinjava create() {
        JinjavaConfig config = config(OutputBudget.MAX_OUTPUT, null);
        // Jinja's grammar (JinjaParser), Python's truth and str in expressions (JinjaOverrides); Jinjava's
        // constructor hard-codes its own factory, but every expression is parsed and evaluated through this getter
        // (ExpressionResolver).
        ExpressionFactory factory = JinjaOverrides.expressionFactory();
        Jinjava jinjava = new Jinjava(config) {
            @Override
            public ExpressionFactory getExpressionFactory() {
                return factory;
            }
        };
        Context globals = jinjava.getGlobalContext();
        globals.registerFunction(function("raise_exception", "raiseException"));
        globals.registerFunction(function("strftime_now", "strftimeNow"));
        globals.registerFilter(new PythonToJsonFilter());
        JinjaOverrides.filters().forEach(globals::registerFilter);
        PythonCollectionFilters.filters().forEach(globals::registerFilter);
        JinjaOverrides.tests().forEach(globals::registerExpTest);
        globals.registerTag(new JinjaOverrides.PythonIfTag());
        return jinjava;
    }

    /**
     * The environment's settings with an output limit of {@code maxOutput} characters (Jinjava's
     * {@code maxOutputSize}, which also bounds its string building; {@link OutputBudget} reads it for the values
     * the template builds): {@link ChatTemplate} renders each conversation with the limit its caller gives.
     *
     * @param objectMapper the environment's (a config would otherwise build a Jackson mapper of its own), or null
     */
    static JinjavaConfig config(long maxOutput, ObjectMapper objectMapper) {
        LegacyOverrides pythonLike = LegacyOverrides.newBuilder()
                // Python semantics where Jinjava's historical defaults differ: operator precedence, dict
                // literal keys as expressions, iterating a dict yields its keys, lists and dicts print as
                // Python repr, "{%-"/"{{-" whitespace control like Jinja.
                .withUseNaturalOperatorPrecedence(true)
                .withEvaluateMapKeys(true)
                .withIterateOverMapKeys(true)
                .withUsePyishObjectMapper(true)
                .withParseWhitespaceControlStrictly(true)
                .withUseTrimmingForNotesAndExpressions(true)
                .withKeepNullableLoopValues(true)
                .withHandleBackslashInQuotesOnly(true)
                // Not withDefaultKeepTrailingNewlineBehavior: Jinjava strips a newline at the end of the
                // *output*, Jinja one at the end of the *source*; ChatTemplate does the latter itself.
                .build();
        JinjavaConfig.Builder config = JinjavaConfig.newBuilder()
                .withTrimBlocks(true)
                // Jinja's lstrip_blocks is applied to the source (JinjaLstripBlocks): Jinjava's stripped the blanks
                // before a block tag also in the middle of a line
                .withLstripBlocks(false)
                // A message containing "{{ ... }}" must be printed, never evaluated.
                .withNestedInterpretationEnabled(false)
                // Undefined variables render as nothing, as Jinja's default Undefined does.
                .withFailOnUnknownTokens(false)
                .withLegacyOverrides(pythonLike)
                .withMaxOutputSize(maxOutput)
                .withInterperterFactory(INTERPRETERS) // sic: Jinjava's spelling
                .withElResolver(RESOLVER);
        if (objectMapper != null) {
            config.withObjectMapper(objectMapper);
        }
        return config.build();
    }

    /**
     * Interpreters whose {@code {{ x }}} prints Python's {@code str(x)}: the expression strategy is a setting of the
     * render's context (inherited by its child scopes), which Jinjava creates afresh for each render without
     * copying the global context's.
     */
    private static final class PythonInterpreters implements InterpreterFactory {
        private static final ExpressionStrategy OUTPUT = new JinjaOverrides.PythonOutput();

        @Override
        public JinjavaInterpreter newInstance(JinjavaInterpreter orig) {
            return new JinjavaInterpreter(orig);
        }

        @Override
        public JinjavaInterpreter newInstance(Jinjava application, Context context, JinjavaConfig renderConfig) {
            context.setExpressionStrategy(OUTPUT);
            return new JinjavaInterpreter(application, context, renderConfig);
        }
    }

    /** Python str methods and attributes of numbers and lists first, then Jinjava's usual (read-only) resolution. */
    private static ELResolver resolver() {
        CompositeELResolver resolver = new CompositeELResolver();
        resolver.add(new PythonStringMethods());
        resolver.add(new PythonAttributes());
        resolver.add(JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_ONLY);
        return resolver;
    }

    private static ELFunctionDefinition function(String name, String method) {
        try {
            Method m = TemplateFunctions.class.getDeclaredMethod(method, String.class);
            m.setAccessible(true);
            return new ELFunctionDefinition("", name, m);
        } catch (NoSuchMethodException e) {
            throw new IllegalStateException(e);
        }
    }
}
