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
     * Jinja's {@code not} negates a whole comparison or test ({@code parse_not} above {@code parse_compare});
     * Jinjava bound it to the operand next to it, so {@code not a == b} was {@code (not a) == b}: EXAONE 3.5's
     * template ({@code {% if not message['role'] == 'user' %}}) silently dropped every end-of-turn token, and
     * {@code not x is defined} (DeepSeek-V3's, Llama 3.1's) was refused. Expected outputs from Jinja 3.1.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiterString = " ==> ", quoteCharacter = '`', value = {
        "{% if not messages[0]['role'] == 'user' %}not user{% endif %} ==> not user",
        "{{ 'y' if not 'z' in 'cat' else 'n' }}{{ 'y' if not messages|length > 2 else 'n' }}"
                + "{{ 'y' if not 1 + 1 == 3 else 'n' }} ==> yyy",
        "{% if not messages is defined %}u{% else %}d{% endif %} ==> d",
        "{%- if not add_generation_prompt is defined -%}x{%- endif -%}none ==> none",
        "{{ not not 'a' }},{{ not 0 and 1 }},{{ (not 1) == false }} ==> True,1,True",
    })
    void not_negatesTheWholeComparison_asInJinja(String template, String expected) {
        assertThat(ChatTemplate.of(template, Map.of()).render(CHAT, true)).isEqualTo(expected);
    }

    /**
     * Expressions Jinjava could not parse (each made every render fail while the model reported ready) or parsed
     * otherwise, in Jinja's grammar now: chained comparisons, tests after filters, slices with a step (Qwen3's
     * {@code messages[::-1]}), Python's string escapes, repetition, a keyword argument's whole expression (Qwen3's
     * {@code namespace(last_query_index=messages|length - 1)}), a conditional's condition, tuples, floored
     * {@code %}. Expected outputs from Jinja 3.1.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiterString = " ==> ", quoteCharacter = '`', value = {
        "{{ 1 < 2 < 3 }},{{ 3 > 2 > 2 }},{{ 'a' in 'ab' in 'xaby' }} ==> True,False,True",
        "{{ messages|length is even }},{{ messages|first|length is odd }} ==> True,False",
        "{% for m in messages[::-1] %}{{ m.role }},{% endfor %}|{{ 'abcdef'[4:1:-1] }}|{{ 'abcdef'[-100:2] }}|"
                + "{{ messages[5:]|length }}|{{ '\uD83D\uDE00ab'[:1] }} ==> user,system,|edc|ab|0|\uD83D\uDE00",
        "{{ '\\u00e9\\x41\\101\\N{BULLET}\\U0001F600' }},{{ 'a\\qb' }} ==> \u00e9AA\u2022\uD83D\uDE00,a\\qb",
        "{{ '-' * 3 }},{{ 2 * 'ab' }},{{ [0] * 2 }},{{ 7 % -3 }} ==> ---,abab,[0, 0],-2",
        "{% set ns = namespace(last=messages|length - 1) %}{{ ns.last }} ==> 1",
        "{{ 'a' if false if true else 'b' }}|{{ 'c' if true if false else 'd' }} ==> |d",
        "{{ (1, 'a') }},{{ ('x',) }},{{ [1, 2] == (1, 2) }} ==> (1, 'a'),('x',),False",
    })
    void expressionsJinjavaCouldNotParse_renderAsJinjaDoes(String template, String expected) {
        assertThat(ChatTemplate.of(template, Map.of()).render(CHAT, true)).isEqualTo(expected);
    }

    /**
     * Jinja's lstrip_blocks (jinja2.lexer), as transformers sets it: the spaces and tabs before a block or comment tag
     * are stripped only when nothing else precedes the tag on its line; "{%+" keeps them, "{%-" strips all
     * whitespace, expressions are never stripped, a raw body is text, a "{%" or "%}" inside quotes is no tag. Jinjava
     * stripped them also in the middle of a line, so "{% if not loop.last %}, {% endif %}" lost its space.
     * Expected outputs from Jinja 3.1.6.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiterString = " ==> ", quoteCharacter = '`', value = {
        "`{% for m in messages %}{{ m.role }}{% if not loop.last %}, {% endif %}{% endfor %}` ==> `system, user`",
        "`{% if true %}, {% endif %}x\\t{% if true %}y{% endif %}` ==> `, x\\ty`",
        "`a\\n  \\t{% if true %}b{% endif %}\\n  {% if true %}\\n  c\\n  {% endif %}\\nd` ==> `a\\nb  c\\nd`",
        "`  {% if true %}x {% endif %}{{ 'y' }}  {% if true %}z{% endif %}` ==> `x y  z`",
        "`a\\n  {%+ if true %}b\\n  {%+ endif %}c` ==> `a\\n  b\\n  c`",
        "`a\\n  {%- if true %}b {%- endif %}c` ==> `abc`",
        "`a\\n \\t{# c #}b {# d #}c\\n  {#+ e #}d` ==> `a\\nb c\\n  d`",
        "`{% raw %}a\\n  {% if %} {{ x }}\\n  {% endraw %}b` ==> `a\\n  {% if %} {{ x }}\\nb`",
        "`{{ '%}' }}\\n  {% if true %}b{% endif %}{{ 'c' }}\\n  {{ 'd' }}` ==> `%}\\nbc\\n  d`",
        "`{% set s = 'x\\n  {%' %}{{ s }}| {% if true %}e{% endif %}{{ \"'\" }} {% if true %}f{% endif %}`"
                + " ==> `x\\n  {%| e' f`",
    })
    void lstripBlocks_stripsBlanksBeforeATagOnlyAtTheStartOfALine(String template, String expected) {
        assertThat(ChatTemplate.of(unescape(template), Map.of()).render(CHAT, true)).isEqualTo(unescape(expected));
    }

    private static String unescape(String s) {
        return s.replace("\\n", "\n").replace("\\t", "\t");
    }

    /**
     * As Jinja compiles a whole template first, a template this engine cannot parse or render as Jinja does is
     * refused when it is loaded (the model does not start), naming the construct: not at the first request, which
     * the gateway would answer with a 400 blaming the client. Unknown tests are refused as Jinja refuses them
     * (Jinjava answered false).
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiterString = " ==> ", quoteCharacter = '`', value = {
        "{{ {'a': {'b': 1}}.a.b }} ==> cannot parse the expression '{'a': {'b': 1' (line 1)",
        "{%- if true %}\\n{% for m in messages recursive %}{{ m.role }}{% endfor %}{% endif %}"
                + " ==> cannot parse the expression 'messages recursive' (line 2)",
        "{{ messages ? 1 : 2 }} ==> cannot parse the expression 'messages ? 1 : 2'",
        "{{ 1 == not 2 }} ==> cannot parse the expression '1 == not 2'",
        "{{ messages[0] is defined if true else 'n' }} ==> cannot parse the expression",
        "{{ '\\x4' }} ==> a truncated \\x escape",
        "{% do messages.append(1) %} ==> Encountered unknown tag 'do'",
        "{{ 'y' if messages[0] is nonexistenttest else 'n' }} ==> No test named 'nonexistenttest'",
        "{{ 'y' if messages is escaped else 'n' }} ==> the test 'escaped'",
    })
    void templatesThisEngineCannotRenderAsJinja_areRefusedWhenLoaded_namingTheConstruct(String template,
                                                                                          String message) {
        assertThatThrownBy(() -> ChatTemplate.of(template.replace("\\n", "\n"), Map.of()))
                .isInstanceOf(ChatTemplateException.class).hasMessageContaining(message);
    }

    /**
     * Python's values as Jinja sees them, where Jinjava's differ: truth (a non-empty string is true, "False"
     * too), None apart from Undefined ({@code is defined}, {@code is none}, {@code default}, {@code ==}),
     * {@code default} keeping its argument's type, {@code trim} as {@code str.strip}, transformers' {@code tojson}
     * signature and Python's float repr, {@code str.startswith}/{@code endswith} with start and end, a string's
     * items (code points) and attributes (Undefined unless a method); {@code and} giving an operand, not a
     * boolean; {@code str()} of booleans, lists, dicts and a dict's items (Jinjava printed true/false and
     * {@code fn:map_entry('k', 'v')}); the tests {@code iterable}, {@code sequence}, {@code callable}, {@code in},
     * {@code number} as Python answers them. Expected outputs from Jinja 3.1 with transformers' environment; the
     * conversation is user "U", assistant "False".
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
        "{{ 'a' and 'b' }},{{ '' and 'b' }},{{ none and 'b' }},{{ x and 'b' }},{{ 1 and 2 }} ==> b,,None,,2",
        "{% set s = messages[0].role == 'user' and messages[0].content %}{{ s }}|"
                + "{% set s = messages[0].role == 'x' and messages[0].content %}{{ s }} ==> U|False",
        "{{ (messages|length > 1 and messages[1].content) or 'none' }} ==> False",
        "{{ x is defined }},{{ flag }},{{ 'x' ~ true }},{{ false|string }},{{ [true, none, 1.5, \"it's\"] }},"
                + "{{ {'k': false} }} ==> False,True,xTrue,False,[True, None, 1.5, \"it's\"],{'k': False}",
        "{{ {'b': 1, 'a': 2}|dictsort }},{{ {'k': 'v'}.items()|list }},{{ [flag]|join(',') }}"
                + " ==> [('a', 2), ('b', 1)],[('k', 'v')],True",
        "{{ 'y' if 'x' is iterable else 'n' }}{{ 'y' if 'x' is sequence else 'n' }}"
                + "{{ 'y' if 3 is iterable else 'n' }}{{ 'y' if none is sequence else 'n' }} ==> yynn",
        "{{ 'y' if raise_exception is callable else 'n' }}{{ 'y' if 'x' is callable else 'n' }}"
                + "{{ 'y' if 'b' is in 'abc' else 'n' }}{{ 'y' if true is number else 'n' }} ==> ynyy",
    })
    void pythonValueSemantics_renderAsJinjaDoes(String template, String expected) {
        Map<String, Object> nested = new HashMap<>();
        nested.put("a", null);
        Map<String, Object> variables = Map.of("spaced", "\u3000x\u00a0\u0085", "nested", nested, "flag", true);
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

    /**
     * Jinja raises where Python does; Jinjava would render None as an empty loop and Undefined as "null". The
     * values the template fails on come with the request (tools, an absent variable, the conversation's length as
     * a slice's step), so the conversation is refused (an IllegalArgumentException). A failure of literals alone is
     * the template's, refused when it is loaded (ChatTemplateLoadCheckTest).
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiterString = " ==> ", quoteCharacter = '`', value = {
        "{% for t in tools %}x{% endfor %} ==> TypeError: 'NoneType' object is not iterable",
        "{{ x|tojson }} ==> TypeError: Object of type Undefined is not JSON serializable",
        "{{ 'abc'[::messages|length - 2] }} ==> ValueError: slice step cannot be zero",
    })
    void pythonErrorsAndUnknownAttributes_failTheRender(String template, String message) {
        ChatTemplate t = ChatTemplate.of(template, Map.of());
        assertThatThrownBy(() -> t.render(CHAT, true))
                .isInstanceOf(ChatTemplateException.class).hasMessageContaining(message);
    }

    /**
     * A template failing on its own while rendering (an attribute Jinjava's loop lacks, whatever the conversation)
     * is the template's fault, not the request's: a BrokenChatTemplateException, which is no
     * IllegalArgumentException (the gateway answers 500 / INTERNAL and logs it), while the template's own refusal
     * of a conversation ({@code raise_exception}) stays a ChatTemplateException (400 / INVALID_ARGUMENT).
     */
    @Test
    void templatesOwnFailure_isABrokenTemplate_whileItsRaiseRefusesTheConversation() {
        ChatTemplate broken = ChatTemplate.of("{% for m in messages %}{{ loop['previtem'] }}{% endfor %}", Map.of());
        assertThatThrownBy(() -> broken.render(CHAT, true))
                .isInstanceOf(BrokenChatTemplateException.class).isNotInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("previtem");
        ChatTemplate raising = ChatTemplate.of("{{ raise_exception('no ' + messages[0].role) }}", Map.of());
        assertThatThrownBy(() -> raising.render(CHAT, true))
                .isInstanceOf(ChatTemplateException.class).hasMessage("TemplateError: no system");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '"', value = {
        "{% for m in messages if m.role == 'user' %}{{ m.content }}{% endfor %} | loop filter",
        "{% for m in [] %}x{% else %}empty{% endfor %}                          | else branch of a loop",
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
