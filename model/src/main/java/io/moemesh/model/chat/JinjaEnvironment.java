package io.moemesh.model.chat;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import java.lang.reflect.Method;
import jinjava.javax.el.CompositeELResolver;
import jinjava.javax.el.ELResolver;

/**
 * A Jinjava configured to behave like the Jinja environment of transformers' {@code apply_chat_template}
 * ({@code ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)}, keep_trailing_newline false).
 */
final class JinjaEnvironment {
    private JinjaEnvironment() {
    }

    static Jinjava create() {
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
        JinjavaConfig config = JinjavaConfig.newBuilder()
                .withTrimBlocks(true)
                .withLstripBlocks(true)
                // A message containing "{{ ... }}" must be printed, never evaluated.
                .withNestedInterpretationEnabled(false)
                // Undefined variables render as nothing, as Jinja's default Undefined does.
                .withFailOnUnknownTokens(false)
                .withLegacyOverrides(pythonLike)
                .withMaxOutputSize(64L * 1024 * 1024)
                .withElResolver(resolver())
                .build();
        Jinjava jinjava = new Jinjava(config);
        jinjava.getGlobalContext().registerFunction(function("raise_exception", "raiseException"));
        jinjava.getGlobalContext().registerFunction(function("strftime_now", "strftimeNow"));
        jinjava.getGlobalContext().registerFilter(new PythonToJsonFilter());
        return jinjava;
    }

    /** Python str methods first, then Jinjava's usual (read-only) resolution. */
    private static ELResolver resolver() {
        CompositeELResolver resolver = new CompositeELResolver();
        resolver.add(new PythonStringMethods());
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
