package io.moemesh.model.chat;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.Map;
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
    })
    void supportedConstructs_renderAsJinjaDoes(String template, String expected) {
        assertThat(ChatTemplate.of(template, Map.of()).render(CHAT, true)).isEqualTo(expected);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '"', value = {
        "{% for m in messages if m.role == 'user' %}{{ m.content }}{% endfor %} | loop filter",
        "{% for m in [] %}x{% else %}empty{% endfor %}                          | else branch of a loop",
        "{% if not messages is defined %}u{% else %}d{% endif %}                | not x is test",
        "{%- if not add_generation_prompt is defined -%}x{%- endif -%}          | not x is test",
        "{{ true }}                                                            | literal true",
        "{{- none -}}                                                          | literal none",
        "{{ False }}                                                           | literal False",
    })
    void constructsJinjavaRendersDifferently_areRefusedWhenLoaded(String template, String what) {
        assertThatThrownBy(() -> ChatTemplate.of(template, Map.of()))
                .isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining("unsupported construct").hasMessageContaining(what);
    }
}
