package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * continue_final_message cuts the rendered chat as transformers does, with Python's str.strip: whitespace Python
 * strips and Java's String.strip does not (U+00A0, U+2007, U+202F, U+0085) must not make a message that a trimming
 * template rendered without it unfindable.
 */
class ContinueFinalMessageCutTest {
    private static final String TRIMMED = "<|im_start|>assistant\nOnce upon<|im_end|>\n";

    @ParameterizedTest(name = "U+{0}")
    @ValueSource(strings = {"00A0", "2007", "202F", "0085", "3000"})
    void trailingPythonWhitespace_isStrippedAsPythonStripsIt(String hex) {
        String space = Character.toString(Integer.parseInt(hex, 16));
        // A template that trims the message (jinja's trim is Python's strip) rendered it without the space.
        assertThat(OpenAiController.cutAfterFinalMessage(TRIMMED, "Once upon" + space))
                .isEqualTo("<|im_start|>assistant\nOnce upon");
        assertThat(OpenAiController.cutAfterFinalMessage(TRIMMED, space + "Once upon"))
                .isEqualTo("<|im_start|>assistant\nOnce upon");
    }
}
