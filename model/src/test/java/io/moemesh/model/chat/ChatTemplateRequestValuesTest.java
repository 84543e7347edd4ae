package io.moemesh.model.chat;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Collections;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import tools.jackson.databind.json.JsonMapper;

/**
 * Values that come with the request ({@code chat_template_kwargs}, the messages) render as Jinja renders them or
 * refuse the conversation as Python would (a ChatTemplateException, the caller's 400), never a failure blamed on the
 * template (a BrokenChatTemplateException, a 500 with a stack trace); a rendered chat too long for the caller's limit
 * is refused as such, before the values that would make it are built. Expected outputs and messages from Jinja 3.1
 * (CPython 3.11) with transformers' environment.
 */
class ChatTemplateRequestValuesTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final List<ChatMessage> CHAT = List.of(ChatMessage.user("U"));

    @SuppressWarnings("unchecked")
    private static Map<String, Object> kwargs(String json) {
        return json == null ? Map.of() : JSON.readValue(json, Map.class);
    }

    /** Jinja's getattr/getitem: what a number, bool, list or dict lacks is Undefined (Jinjava failed the render). */
    @ParameterizedTest(name = "{0} with {1}")
    @CsvSource(delimiterString = " | ", quoteCharacter = '`', value = {
        "{% if thinking.enabled %}y{% else %}n{% endif %} | {\"thinking\": true} | n",
        "[{{ n.y }}][{{ n[0] }}][{{ n.real }}][{{ n.imag }}][{{ n.denominator }}] | {\"n\": 3} | [][][3][0][1]",
        "[{{ l.y }}][{{ l['x'] }}][{{ l[5] }}][{{ l[1.5] }}] | {\"l\": [1]} | [][][][]",
        "[{{ f.y }}][{{ f.imag }}][{{ f.numerator }}] | {\"f\": 2.5} | [][0.0][]",
        "[{{ b.y }}][{{ b.real }}] | {\"b\": true} | [][1]",
        "[{{ d.y }}][{{ messages.y }}] | {\"d\": {\"a\": 1}} | [][]",
    })
    void attributeARequestValueLacks_isUndefined_asInJinja(String template, String variables, String expected) {
        assertThat(ChatTemplate.of(template, Map.of()).render(CHAT, false, kwargs(variables))).isEqualTo(expected);
    }

    /**
     * Jinja's {@code items}: a mapping's (key, value) tuples in its order, unpacked by a for loop (Llama 3.1's
     * {@code {% for arg_name, arg_val in tool_call.arguments | items %}}); Undefined has none.
     */
    @ParameterizedTest(name = "{0} with {1}")
    @CsvSource(delimiterString = " | ", quoteCharacter = '`', value = {
        "{% for k, v in args|items %}{{ k }}={{ v }}{% if not loop.last %}{{ ', ' }}{% endif %}{% endfor %}"
                + " | {\"args\": {\"city\": \"Paris\", \"days\": 3, \"u\": null}} | city=Paris, days=3, u=None",
        "{{ args|items|list }}/{{ (args|items|first)[1] }}/{{ missing|items|list }}"
                + " | {\"args\": {\"a\": [1, true]}} | [('a', [1, True])]/[1, True]/[]",
    })
    void items_pairsAMappingsKeysAndValues_asJinja(String template, String variables, String expected) {
        assertThat(ChatTemplate.of(template, Map.of()).render(CHAT, false, kwargs(variables))).isEqualTo(expected);
    }

    /**
     * Jinja's {@code max}/{@code min(case_sensitive=False, attribute=None)}: Python's max/min of what iteration
     * yields, strings compared lowercased unless case-sensitive, the first of equal items, by a (dotted) attribute
     * when named; an empty value is Undefined.
     */
    @ParameterizedTest(name = "{0} with {1}")
    @CsvSource(delimiterString = " | ", quoteCharacter = '`', value = {
        "{{ l|max }},{{ l|min }} | {\"l\": [3, 1.5, 2]} | 3,1.5",
        "{{ l|max }},{{ l|min }},{{ l|max(case_sensitive=true) }},{{ l|min(true) }}"
                + " | {\"l\": [\"B\", \"a\", \"b\"]} | B,a,b,B",
        "{{ (t|max(attribute='function.n')).name }},{{ (t|min(attribute='name')).name }}"
                + " | {\"t\": [{\"name\": \"x\", \"function\": {\"n\": 2}},"
                + " {\"name\": \"Y\", \"function\": {\"n\": 5}}]} | Y,x",
        "[{{ e|max }}][{{ missing|min }}][{{ s|max }}][{{ d|max }}]"
                + " | {\"e\": [], \"s\": \"hello\", \"d\": {\"a\": 1, \"c\": 0}} | [][][o][c]",
    })
    void maxAndMin_areJinjas(String template, String variables, String expected) {
        assertThat(ChatTemplate.of(template, Map.of()).render(CHAT, false, kwargs(variables))).isEqualTo(expected);
    }

    /** items of a non-mapping, max/min of what Python cannot iterate or order: the conversation's TypeError. */
    @ParameterizedTest(name = "{0} with {1}")
    @CsvSource(delimiterString = " | ", quoteCharacter = '`', value = {
        "{{ x|items|list }} | {\"x\": [1]} | TypeError: Can only get item pairs from a mapping.",
        "{{ x|items|list }} | {\"x\": null} | TypeError: Can only get item pairs from a mapping.",
        "{{ x|max }} | {\"x\": [1, \"a\"]} | TypeError: '>' not supported between instances of 'str' and 'int'",
        "{{ x|min }} | {\"x\": null} | TypeError: 'NoneType' object is not iterable",
    })
    void itemsMaxOrMinOfValuesPythonRefuses_refusesTheConversation(String template, String variables,
            String message) {
        ChatTemplate t = ChatTemplate.of(template, Map.of());
        assertThatThrownBy(() -> t.render(CHAT, false, kwargs(variables)))
                .isInstanceOf(ChatTemplateException.class).hasMessage(message);
    }

    /**
     * Arithmetic and order comparisons on request values fail as Python fails, the conversation's error: JUEL
     * coerced ({@code '5' - 1} was 4, {@code x / 0} inf) or failed the render as the template's fault.
     */
    @ParameterizedTest(name = "{0} with {1}")
    @CsvSource(delimiterString = " | ", quoteCharacter = '`', value = {
        "{{ budget - 1 }} | {\"budget\": \"abc\"} | TypeError: unsupported operand type(s) for -: 'str' and 'int'",
        "{{ budget - 1 }} | {\"budget\": \"5\"} | TypeError: unsupported operand type(s) for -: 'str' and 'int'",
        "{{ budget + 1 }} | {\"budget\": \"5\"} | TypeError: can only concatenate str (not \"int\") to str",
        "{{ x % n }} | {\"x\": 5, \"n\": 0} | ZeroDivisionError: integer modulo by zero",
        "{{ x / n }} | {\"x\": 5, \"n\": 0} | ZeroDivisionError: division by zero",
        "{{ x // n }} | {\"x\": 5, \"n\": 0} | ZeroDivisionError: integer division or modulo by zero",
        "{{ x % n }} | {\"x\": 5.0, \"n\": 0} | ZeroDivisionError: float modulo",
        "{{ -s }} | {\"s\": \"a\"} | TypeError: bad operand type for unary -: 'str'",
        "{{ s < 2 }} | {\"s\": \"a\"} | TypeError: '<' not supported between instances of 'str' and 'int'",
        "{{ x * y }} | {\"x\": {\"a\": 1}, \"y\": 2} | TypeError: unsupported operand type(s) for *: 'dict' and 'int'",
        "{{ s * 1.5 }} | {\"s\": \"a\"} | TypeError: can't multiply sequence by non-int of type 'float'",
        "{{ t + [2] }} | {\"t\": null} | TypeError: unsupported operand type(s) for +: 'NoneType' and 'list'",
        "{{ missing + 1 }} | {} | UndefinedError: 'missing' is undefined",
    })
    void pythonFailingOnARequestValue_refusesTheConversation(String template, String variables, String message) {
        ChatTemplate t = ChatTemplate.of(template, Map.of());
        assertThatThrownBy(() -> t.render(CHAT, false, kwargs(variables)))
                .isInstanceOf(ChatTemplateException.class).hasMessage(message);
    }

    /** Python's arithmetic, precedence (Jinja's: ** above *, to the left) and order comparisons. */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiterString = " ==> ", quoteCharacter = '`', value = {
        "{{ 2 * 3 ** 2 }},{{ 2 ** 3 ** 2 }},{{ -2 ** 2 }},{{ 2 ** -1 }},{{ 10 ** 20 }},{{ 9223372036854775807 + 1 }}"
                + " ==> 18,64,4,0.5,100000000000000000000,9223372036854775808",
        "{{ 7.5 // 2 }},{{ -7.5 % 2 }},{{ 7 % -2.5 }},{{ -7 // 2 }},{{ 7 / 2 }},{{ 4 / 2 }},{{ true + 1 }},{{ +n }}"
                + " ==> 3.0,0.5,-0.5,-4,3.5,2.0,2,-3",
        "{{ 'a' < 'b' }},{{ [1, 2] < [1, 3] }},{{ (1, 2) >= (1, 2) }},{{ 2 > 1.5 }},{{ 'b' <= 'a' }}"
                + " ==> True,True,True,True,False",
    })
    void arithmetic_isPythons(String template, String expected) {
        assertThat(ChatTemplate.of(template, Map.of()).render(CHAT, false, Map.of("n", -3))).isEqualTo(expected);
    }

    /**
     * A repetition by a count from the request is bounded by the render's output limit, counting a list by the
     * characters of its printed items (each at least 3): {@code [content] * n} held n references whatever its
     * printed size, up to 64M of them (256 MB) before the old check; now past the limit it is the conversation's
     * rendered chat being too long, refused before the value is built.
     */
    @Test
    void repetitionByARequestCount_pastTheLimit_isTheRenderedChatTooLong() {
        ChatTemplate list = ChatTemplate.of("{{ ([content] * n)|length }}", Map.of());
        assertThatThrownBy(() -> list.render(CHAT, false, Map.of("content", "abcd", "n", 10_000_000)))
                .isInstanceOf(RenderedChatTooLongException.class);
        assertThatThrownBy(() -> list.render(CHAT, false, Map.of("content", "abcd", "n", 5000), 10_000))
                .isInstanceOf(RenderedChatTooLongException.class)
                .hasMessageContaining("longer than 10000 characters");
        assertThat(list.render(CHAT, false, Map.of("content", "abcd", "n", 1000), 10_000)).isEqualTo("1000");

        ChatTemplate text = ChatTemplate.of("{{ content * n }}", Map.of());
        assertThatThrownBy(() -> text.render(CHAT, false, Map.of("content", "abcd", "n", 20_000_000)))
                .isInstanceOf(RenderedChatTooLongException.class);
        assertThatThrownBy(() -> text.render(CHAT, false, Map.of("content", "abcd", "n", 2501), 10_000))
                .isInstanceOf(RenderedChatTooLongException.class);
        assertThat(text.render(CHAT, false, Map.of("content", "abcd", "n", 2500), 10_000)).hasSize(10_000);
    }

    /**
     * The other values a template builds from request values are bounded by the same limit where they are made:
     * a printed list or dict (Python's str), tojson, join, and a string doubled by a loop over the request's
     * messages; and the output itself.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiterString = " | ", quoteCharacter = '`', value = {
        "{{ items }}",
        "{{ items|tojson }}",
        "{{ items|join(',') }}",
        "{% set ns = namespace(s=items[0]) %}{% for m in messages %}{% set ns.s = ns.s + ns.s %}{% endfor %}ok",
        "{% for i in items %}{{ i }}{% endfor %}",
    })
    void valuesBuiltFromTheRequest_pastTheLimit_areTheRenderedChatTooLong(String template) {
        List<String> items = Collections.nCopies(200, "x".repeat(100));
        List<ChatMessage> many = Collections.nCopies(12, ChatMessage.user("U"));
        ChatTemplate t = ChatTemplate.of(template, Map.of());
        assertThatThrownBy(() -> t.render(many, false, Map.of("items", items), 10_000))
                .isInstanceOf(RenderedChatTooLongException.class);
    }
}
