package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.gateway.serving.PromptLimits;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.util.OptionalInt;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import tools.jackson.databind.json.JsonMapper;

/**
 * Text that becomes prompt (or is looked for in the output) must be Unicode: JSON can spell a lone surrogate
 * ({@code "\\ud83d"} without its low half), which UTF-8 cannot encode (Java's encoder writes '?' for it),
 * and HF tokenizers refuse. Refused with 400 naming the field; a surrogate pair is a character like any other.
 */
class OpenAiRequestParserTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final PromptLimits LIMITS = new PromptLimits(512, 511, OptionalInt.empty(), 16);

    /** {@code fields} in a request body for model "m". */
    private static OpenAiRequest parse(String fields, boolean chat) {
        String body = "{\"model\": \"m\", " + fields.substring(1);
        return OpenAiRequestParser.parse(new ByteArrayInputStream(body.getBytes(StandardCharsets.UTF_8)), chat, JSON,
                LIMITS);
    }

    @ParameterizedTest(name = "{1}")
    @CsvSource(delimiter = '|', quoteCharacter = '`', value = {
        "false | prompt                    | {\"prompt\": \"x\\ud83dy\"}",
        "false | prompt                    | {\"prompt\": [\"\\ude00\"]}",
        "false | stop                      | {\"prompt\": \"x\", \"stop\": [\"a\", \"b\\ud800\"]}",
        "true  | messages[1].content       | {\"messages\": [{\"role\": \"user\", \"content\": \"ok\"}, "
                + "{\"role\": \"user\", \"content\": \"x\\ud83dy\"}]}",
        "true  | messages[0].content[1].text | {\"messages\": [{\"role\": \"user\", \"content\": "
                + "[{\"type\": \"text\", \"text\": \"a\"}, {\"type\": \"text\", \"text\": \"\\udc00\"}]}]}",
        "true  | chat_template_kwargs      | {\"messages\": [{\"role\": \"user\", \"content\": \"a\"}], "
                + "\"chat_template_kwargs\": {\"name\": [\"\\ud83d\"]}}",
    })
    void loneSurrogate_isRefusedNamingTheField(boolean chat, String field, String body) {
        assertThatThrownBy(() -> parse(body, chat))
                .isInstanceOfSatisfying(OpenAiException.class, e -> {
                    assertThat(e.status()).isEqualTo(400);
                    assertThat(e.param()).isEqualTo(field);
                })
                .hasMessageContaining(field + " is not valid Unicode: it has a lone surrogate");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '`', value = {
        "{\"prompt\": \"x\\ud83d\\ude00y\", \"stop\": \"\\ud83d\\ude00\"} | x\ud83d\ude00y",
    })
    void surrogatePair_isOneCharacter_andAccepted(String body, String prompt) {
        OpenAiRequest r = parse(body, false);
        assertThat(r.prompt()).isEqualTo(prompt);
        assertThat(r.stop()).containsExactly("\ud83d\ude00");
    }
}
