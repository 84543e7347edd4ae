package io.moemesh.model.chat;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** A template is either rendered as Jinja renders it (expected outputs from Jinja 3) or refused when loaded. */
class JinjaConformanceTest {
    private static final List<ChatMessage> CHAT = List.of(new ChatMessage("system", "S"), new ChatMessage("user", "U"));

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '"', value = {
        "{{ messages[-1].role }}                           | user",
        "{% if not (x is defined) %}undef{% endif %}       | undef",
        "{% if messages is not defined %}u{% else %}d{% endif %} | d",
        "{% for m in messages %}{% if m.role == 'user' %}{{ m.content }}{% endif %}{% endfor %} | U",
        "{{ 'not x is defined' }}                          | not x is defined",
        "{{- none -}},{{ None }},{{ [1, none] }}           | None,None,[1, None]",
    })
    void supportedConstructs_renderAsJinjaDoes(String template, String expected) {
        assertThat(ChatTemplate.of(template, Map.of()).render(CHAT, true)).isEqualTo(expected);
    }

    /**
     * Python's values as Jinja sees them, where Jinjava's differ: truth (a non-empty string is true, "False"
     * too), None apart from Undefined ({@code is defined}, {@code is none}, {@code default}, {@code ==}),
     * {@code default} keeping its argument's type, {@code trim} as {@code str.strip}, transformers' {@code tojson}
     * signature and Python's float repr, {@code str.startswith}/{@code endswith} with start and end, a string's
     * items (code points) and attributes (Undefined unless a method). Expected
     * outputs from Jinja 3.1 with transformers' environment; the conversation is user "U", assistant "False".
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiterString = " ==> ", quoteCharacter = '`', value = {
        "{% for m in messages %}{% if m['content'] %}[{{ m['content'] }}]{% endif %}{% endfor %} ==> [U][False]",
        "{{ messages|selectattr('content')|list|length }} ==> 2",
        "{{ 'T' if 'false' else 'F' }}{{ 'T' if not 'FALSE' else 'F' }} ==> TF",
        "{{ x|default(false)|tojson }},{{ x|d(0)|tojson }} ==> false,0",
        "{% if (x|default(false)) is false %}ok{% endif %} ==> ok",
        "{% if tools is defined %}defined{% endif %} ==> defined",
        "{% if messages[0].tool_calls is none %}none{% else %}undefined{% endif %} ==> undefined",
        "{{ none|default('a') }},{{ tools|default('a') }},{{ x|default('a') }},{{ tools|default('a', true) }}"
                + " ==> None,None,a,a",
        "{{ 'y' if nested.a is defined else 'n' }}{{ 'y' if nested.a is none else 'n' }}"
                + "{{ 'y' if nested.a == none else 'n' }} ==> yyy",
        "{{ 'y' if {'a': 1}.get('b') is defined and {'a': 1}.get('b') is none else 'n' }} ==> y",
        "{{ 'y' if '1' is eq 1 else 'n' }}{{ 'y' if none is equalto none else 'n' }}"
                + "{{ 'y' if 1 is ne 1.0 else 'n' }} ==> nyn",
        "{{ 'y' if '1' == 1 else 'n' }}{{ 'y' if x == none else 'n' }}{{ 'y' if tools != none else 'n' }} ==> nnn",
        "{{ spaced|trim }},{{ 'xxhixx'|trim('x') }},{{ x|trim }} ==> x,hi,",
        "{{ 'abc'[0] }}{{ 'abc'[-1] }},{{ 'abc'[5] }},{{ 'abc'.foo }},{{ messages[1].content[-2] }} ==> ac,,,s",
        "{{ {'a': [1, 2]}|tojson(separators=(',', ':')) }} ==> {\"a\":[1,2]}",
        "{{ ['é']|tojson(2) }} ==> [\"\\u00e9\"]",
        "{{ [0.0005, 12345678.5, 1e16, 0.00001, 2.5e-7]|tojson }}"
                + " ==> [0.0005, 12345678.5, 1e+16, 1e-05, 2.5e-07]",
        "{{ {'b': 1, 'a': none, 'c': 0.00001}|tojson(indent=1, sort_keys=true) }}"
                + " ==> {\\n \"a\": null,\\n \"b\": 1,\\n \"c\": 1e-05\\n}",
        "{{ 'y' if 'abcdef'.startswith('cd', 2, -2) else 'n' }}{{ 'y' if 'abc'.startswith('', 4) else 'n' }}"
                + "{{ 'y' if 'abcdef'.endswith(('x', 'de'), -3, -1) else 'n' }}"
                + "{{ 'y' if 'abc'.endswith('c', 1, 99) else 'n' }}"
                + " ==> ynyy",
    })
    void pythonValueSemantics_renderAsJinjaDoes(String template, String expected) {
        Map<String, Object> nested = new HashMap<>();
        nested.put("a", null);
        Map<String, Object> variables = Map.of("spaced", "\u3000x\u00a0\u0085", "nested", nested);
        assertThat(ChatTemplate.of(template, Map.of()).render(List.of(ChatMessage.user("U"),
                ChatMessage.assistant("False")), false, variables)).isEqualTo(expected.replace("\\n", "\n"));
    }

    /**
     * {@code |safe} gives markupsafe's Markup, a str subclass, so it is a string to truth, {@code ==} and the
     * filters after it; Jinjava's SafeString is no CharSequence, and Jinjava wraps later filter results in it again.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiterString = " ==> ", quoteCharacter = '`', value = {
        "{% if ''|safe %}y{% else %}n{% endif %} ==> n",
        "{% if ('x'|safe) == 'x' %}y{% else %}n{% endif %}{% if ('1'|safe) == 1 %}y{% else %}n{% endif %} ==> yn",
        "{{ 'y' if ('x'|safe) is eq 'x' else 'n' }}{{ 'y' if not ''|safe else 'n' }} ==> yy",
        "{{ ''|safe|default('d', true) }},{{ ''|safe|trim|default('e', true) }} ==> d,e",
    })
    void safeStrings_areStringsToTruthEqualityAndLaterFilters(String template, String expected) {
        assertThat(ChatTemplate.of(template, Map.of()).render(CHAT, false)).isEqualTo(expected);
    }

    /** str() of a float is its repr, "nan"/"inf" for the non-finite ones; only json spells them NaN/Infinity. */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiterString = " ==> ", quoteCharacter = '`', value = {
        "{{ nan|trim }},{{ inf|trim }},{{ ninf|trim }},{{ 1.5|trim }} ==> nan,inf,-inf,1.5",
        "{{ [nan, inf, ninf]|tojson }} ==> [NaN, Infinity, -Infinity]",
    })
    void strOfNonFiniteFloats_isPythonsNotJsons(String template, String expected) {
        Map<String, Object> variables = Map.of("nan", Double.NaN, "inf", Double.POSITIVE_INFINITY,
                "ninf", Double.NEGATIVE_INFINITY);
        assertThat(ChatTemplate.of(template, Map.of()).render(CHAT, false, variables)).isEqualTo(expected);
    }

    /**
     * json.dumps(sort_keys=True) sorts the original keys as Python orders them: numbers numerically, and a number
     * and a string not at all (TypeError). The keys come from a variable: Jinjava turns every key of a dict literal
     * into a string ({@code {10: 1}} has the key "10"), so a literal cannot show it.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiterString = " ==> ", quoteCharacter = '`', value = {
        "{{ numbered|tojson(sort_keys=true) }} ==> {\"9\": 2, \"10\": 1}",
        "{{ floats|tojson(sort_keys=true) }} ==> {\"-1\": 3, \"9.5\": 2, \"10\": 1}",
        "{{ {'b':1, 'a':2}|tojson(sort_keys=true) }} ==> {\"a\": 2, \"b\": 1}",
    })
    void tojsonSortKeys_ordersNumericKeysNumerically(String template, String expected) {
        Map<Object, Object> numbered = new LinkedHashMap<>();
        numbered.put(10, 1);
        numbered.put(9, 2);
        Map<Object, Object> floats = new LinkedHashMap<>();
        floats.put(10L, 1);
        floats.put(9.5, 2);
        floats.put(-1, 3);
        assertThat(ChatTemplate.of(template, Map.of()).render(CHAT, false,
                Map.of("numbered", numbered, "floats", floats))).isEqualTo(expected);
    }

    @Test
    void tojsonSortKeys_failsOnKeysPythonCannotOrder() {
        Map<Object, Object> mixed = new LinkedHashMap<>();
        mixed.put(1, 1);
        mixed.put("a", 2);
        ChatTemplate t = ChatTemplate.of("{{ mixed|tojson(sort_keys=true) }}", Map.of());
        assertThatThrownBy(() -> t.render(CHAT, false, Map.of("mixed", mixed)))
                .isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining("TypeError: '<' not supported between instances of");
    }

    /** Jinja raises where Python does; Jinjava would render None as an empty loop and Undefined as "null". */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiterString = " ==> ", quoteCharacter = '`', value = {
        "{% for t in tools %}x{% endfor %} ==> TypeError: 'NoneType' object is not iterable",
        "{{ x|tojson }} ==> TypeError: Object of type Undefined is not JSON serializable",
        "{% for m in messages %}{{ loop['previtem'] }}{% endfor %} ==> previtem",
    })
    void pythonErrorsAndUnknownAttributes_failTheRender(String template, String message) {
        ChatTemplate t = ChatTemplate.of(template, Map.of());
        assertThatThrownBy(() -> t.render(CHAT, true))
                .isInstanceOf(ChatTemplateException.class).hasMessageContaining(message);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '"', value = {
        "{% for m in messages if m.role == 'user' %}{{ m.content }}{% endfor %} | loop filter",
        "{% for m in [] %}x{% else %}empty{% endfor %}                          | else branch of a loop",
        "{% if not messages is defined %}u{% else %}d{% endif %}                | not x is test",
        "{%- if not add_generation_prompt is defined -%}x{%- endif -%}          | not x is test",
        "{{ true }}                                                            | literal true",
        "{{ False }}                                                           | literal False",
        "{% for m in messages %}{{ loop.previtem.role }}{% endfor %}             | loop.previtem",
        "{% for m in messages %}{{ loop.nextitem }}{% endfor %}                  | loop.nextitem",
        "{% for m in messages %}{% if loop.changed(m.role) %}x{% endif %}{% endfor %} | loop.changed",
    })
    void constructsJinjavaRendersDifferently_areRefusedWhenLoaded(String template, String what) {
        assertThatThrownBy(() -> ChatTemplate.of(template, Map.of()))
                .isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining("unsupported construct").hasMessageContaining(what);
    }
}
