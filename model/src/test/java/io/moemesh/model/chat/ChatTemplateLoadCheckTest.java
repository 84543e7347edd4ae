package io.moemesh.model.chat;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * What a template can be seen to get wrong is refused when it is loaded (the model does not start), naming it:
 * not at each request, where it was a 400 blaming the client or a 500. Expected outputs from Jinja 3.1.
 */
class ChatTemplateLoadCheckTest {
    private static final List<ChatMessage> CHAT = List.of(ChatMessage.user("U"));

    private static ChatTemplate load(String template) {
        return ChatTemplate.of(template, Map.of());
    }

    /**
     * A part of an expression made of literals only that fails fails whatever the request: the template's fault,
     * also in a branch no conversation reaches yet. Python's own errors were each request's 400.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiterString = " ==> ", quoteCharacter = '`', value = {
        "{{ 'abc'[::0] }} ==> ValueError: slice step cannot be zero",
        "{{ '-' * 2.5 }} ==> TypeError: can't multiply sequence by non-int of type 'float'",
        "{% if messages %}{{ messages[0].content ~ ('a' + 1) }}{% endif %}"
                + " ==> TypeError: can only concatenate str (not \"int\") to str",
        "{% set n = 1 // 0 %} ==> ZeroDivisionError: integer division or modulo by zero",
        "{{ '=' * 10 ** 9 }} ==> longer than any render may output",
        "{% macro m(x=[1 / 0]) %}{% endmacro %} ==> ZeroDivisionError: division by zero",
    })
    void literalsThatFail_areRefusedWhenLoaded(String template, String message) {
        assertThatThrownBy(() -> load(template)).isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining("fails whatever the conversation").hasMessageContaining(message);
    }

    /** Literals that do not fail are left to the render, which gives what Jinja gives. */
    @Test
    void literalsThatSucceed_renderAsJinja() {
        assertThat(load("{{ '-' * 3 }}{{ [1, 2][::-1] }}{{ 'ab'.upper() }}{{ {'a': 1 + 1} }}{{ (1 / 4) }}")
                .render(CHAT, false)).isEqualTo("---[2, 1]AB{'a': 2}0.25");
    }

    /**
     * A surrogate escape in a literal (Python keeps '\\ud83d' as a lone surrogate, and '\\ud83d\\ude00' as two),
     * or a lone surrogate in the template's text (a JSON escape in tokenizer_config.json), would reach the
     * tokenizer on every render that prints it, which refused it as the request's text.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiterString = " ==> ", quoteCharacter = '`', value = {
        "{{ '\\ud83d' }} ==> a surrogate escape \\ud83d",
        "{{ '\\ud83d\\ude00' }} ==> a surrogate escape \\ud83d",
        "{{ 'x' if false else '\\U0000dc00' }} ==> a surrogate escape \\U0000dc00",
    })
    void surrogateEscapes_areRefusedWhenLoaded(String template, String message) {
        assertThatThrownBy(() -> load(template)).isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining(message);
    }

    @Test
    void loneSurrogateInTheTemplatesText_isRefusedWhenLoaded() {
        assertThatThrownBy(() -> load("{{ bos_token }}\n<\uD83D>")).isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining("lone surrogate \\ud83d at character 17 (line 2)");
    }

    /**
     * A lone surrogate the render makes is the template's (here Jinjava's |list cuts a string by UTF-16 unit: the
     * first item of an emoji is its high half; Jinja gives the whole emoji): a server error, not the tokenizer's
     * refusal of "the request's text". One the conversation brings is the conversation's.
     */
    @Test
    void loneSurrogateInTheOutput_isTheTemplatesFault_unlessTheConversationHasOne() {
        ChatTemplate t = load("{{ (messages[0].content|list)[0] }}");
        assertThatThrownBy(() -> t.render(List.of(ChatMessage.user("\uD83D\uDE00")), false))
                .isInstanceOf(BrokenChatTemplateException.class).hasMessageContaining("lone surrogate \\ud83d");
        ChatTemplate echo = load("{{ messages[0].content }}");
        assertThatThrownBy(() -> echo.render(List.of(ChatMessage.user("x\uD83D")), false))
                .isInstanceOf(ChatTemplateException.class).hasMessageContaining("message 0 has a lone surrogate");
    }

    /**
     * Function calls are checked against what this engine has: Jinja's globals it lacks (dict, cycler, joiner,
     * lipsum), Jinjava's own (today), and names nothing defines loaded fine and failed every request that
     * reached them (500).
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiterString = " ==> ", quoteCharacter = '`', value = {
        "{{ dict(a=1) }} ==> the function 'dict'",
        "{% set c = cycler('a', 'b') %} ==> the function 'cycler'",
        "{% set j = joiner(',') %} ==> the function 'joiner'",
        "{% if false %}{{ lipsum(1) }}{% endif %} ==> the function 'lipsum'",
        "{{ today() }} ==> the function 'today'",
        "{{ undefined_helper(messages) }} ==> Jinja would fail with UndefinedError",
    })
    void functionsThisEngineLacks_areRefusedWhenLoaded(String template, String message) {
        assertThatThrownBy(() -> load(template)).isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining("unsupported construct").hasMessageContaining(message);
    }

    @Test
    void jinjasGlobalsThisEngineHas_transformersFunctions_macrosAndCaller_load() {
        String template = "{% macro wrap(x) %}[{{ x }}{{ caller() }}]{% endmacro %}"
                + "{% set ns = namespace(n=0) %}{% for i in range(2) %}{% set ns.n = ns.n + i %}{% endfor %}"
                + "{% call wrap(ns.n) %}!{% endcall %}{% macro later(y) %}{{ y }}{% endmacro %}{{ later('y') }}"
                + "{% if false %}{{ raise_exception('no') }}{{ strftime_now('%Y') }}{% endif %}";
        assertThat(load(template).render(CHAT, false)).isEqualTo("[1!]y");
    }

    /**
     * Filters are checked against Jinja's (and transformers' tojson), not Jinjava's: Jinjava's own loaded and
     * rendered (render re-renders its input).
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiterString = " ==> ", quoteCharacter = '`', value = {
        "{{ messages[0].content|render }} ==> TemplateAssertionError: No filter named 'render'.",
        "{{ 'x'|md5 }} ==> TemplateAssertionError: No filter named 'md5'.",
    })
    void filtersJinjaLacks_areRefusedWhenLoaded(String template, String message) {
        assertThatThrownBy(() -> load(template)).isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining(message);
    }

    /**
     * Jinja's items, max and min, which Jinjava lacks, load and render as Jinja renders them: Llama 3.1-3.3's and
     * Qwen3-Coder's templates ({@code tool_call.arguments | items}) were refused when loaded.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiterString = " ==> ", quoteCharacter = '`', value = {
        "{{ [1, 2]|max }},{{ [1, 2]|min }} ==> 2,1",
        "{{ {'a': 1}|items|list }} ==> [('a', 1)]",
        "{% for k, v in {'a': 1, 'b': 'x'} | items %}{{ k }}={{ v }};{% endfor %} ==> a=1;b=x;",
    })
    void itemsMaxAndMin_loadAndRenderAsJinja(String template, String expected) {
        assertThat(load(template).render(CHAT, false)).isEqualTo(expected);
    }

    /** A stray '|' threw Jinjava's ELException at load: no ChatTemplateException, no line. */
    @Test
    void pipeWithoutAFilterName_isASyntaxError_namingTheLine() {
        assertThatThrownBy(() -> load("x\n{{ messages | 1 }}")).isInstanceOf(ChatTemplateException.class)
                .hasMessageStartingWith("TemplateSyntaxError: cannot parse the expression 'messages | 1' (line 2)")
                .hasMessageContaining("a filter name after '|'");
    }

    /**
     * Macro defaults are read as MacroTag reads them (split at commas, a list's pieces joined back): a list
     * default loads and renders as in Jinja; one MacroTag would read otherwise is refused.
     */
    @Test
    void macroWithAListDefault_rendersAsJinja() {
        assertThat(load("{% macro m(keys=['a', 'b'],  sep='+') %}{{ keys|join(sep) }}{% endmacro %}{{ m() }}")
                .render(CHAT, false)).isEqualTo("a+b");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiterString = " ==> ", quoteCharacter = '`', value = {
        "{% macro m(sep=', ') %}{% endmacro %}",
        "{% macro m(d={'a': 1, 'b': 2}) %}{% endmacro %}",
        "{% macro m(l=[[1, 2], [3]]) %}{% endmacro %}",
        "{% macro m(l=['a,b']) %}{% endmacro %}",
    })
    void macroDefaultsMacroTagWouldSplitOtherwise_areRefusedWhenLoaded(String template) {
        assertThatThrownBy(() -> load(template)).isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining("unsupported construct the macro signature");
    }
}
