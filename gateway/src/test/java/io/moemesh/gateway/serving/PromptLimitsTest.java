package io.moemesh.gateway.serving;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.OptionalInt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The prompt limits' rules not covered by {@link IntakeAndPromptLimitsTest}: construction refuses impossible
 * limits; an explicit max_tokens is refused only above a configured cap; the refusal says which limit was hit
 * (the model's context or this gateway's configured limit); a tokenizer without a byte bound refuses texts only by
 * their tokens.
 */
class PromptLimitsTest {

    @ParameterizedTest(name = "context {0}, max prompt {1}, max new {2}, max messages {3}")
    @CsvSource({"1, 1, 1, 1", "0, 1, 1, 1", "2, 0, 1, 1", "2, 1, 0, 1", "2, 1, 1, 0", "-5, 10, 10, 10"})
    void impossibleLimits_refusedAtConstruction_namingEveryValue(int context, int maxPrompt, int maxNew,
                                                                  int maxMessages) {
        assertThatThrownBy(() -> new PromptLimits(context, maxPrompt, maxNew, OptionalInt.of(4), maxMessages))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("context ≥ 2, max prompt tokens ≥ 1, max new tokens ≥ 1 and max chat messages ≥ 1 are "
                        + "required, got " + context + ", " + maxPrompt + ", " + maxNew + ", " + maxMessages);
    }

    /** Without max_tokens a request gets the rest of the context, within the configured cap (not refused by it). */
    @ParameterizedTest(name = "context {0}, cap {1}, prompt {2}: {3}")
    @CsvSource({"512, 8, 10, 8", "512, 8, 506, 6", "512, 512, 10, 502", "512, 512, 511, 1"})
    void defaultMaxTokens_isTheRestOfTheContext_atMostTheCap(int context, int cap, int prompt, int expected) {
        assertThat(new PromptLimits(context, context, cap, OptionalInt.of(4), 8).defaultMaxTokens(prompt))
                .isEqualTo(expected);
    }

    /**
     * An explicit max_tokens is refused only above a cap below the context, whatever it would be clamped to; a cap
     * at or above the context (none configured: the context itself) refuses nothing, the context ends the completion.
     */
    @ParameterizedTest(name = "context {0}, cap {1}, max_tokens {2}: {3}")
    @CsvSource(nullValues = "-", value = {"512, 8, 8, -", "512, 8, 9, 9 exceeds the limit of 8",
            "512, 8, 2147483647, 2147483647 exceeds the limit of 8", "512, 512, 513, -", "512, 512, 2147483647, -",
            "512, 4096, 5000, -"})
    void maxTokensProblem_onlyAboveACapBelowTheContext(int context, int cap, long maxTokens, String problem) {
        assertThat(new PromptLimits(context, context, cap, OptionalInt.of(4), 8).maxTokensProblem(maxTokens))
                .isEqualTo(problem);
    }

    @Test
    void withoutACap_theDefaultIsTheRestOfTheContext() {
        assertThat(new PromptLimits(512, 100, OptionalInt.of(4), 8).defaultMaxTokens(100)).isEqualTo(412);
    }

    @Test
    void smallestLimits_allowAOneTokenPrompt() {
        PromptLimits l = new PromptLimits(2, 1, OptionalInt.of(4), 1);
        assertThat(l.maxPromptTokens()).isEqualTo(1);
        l.checkTokens("prompt", 1);
        assertThatThrownBy(() -> l.checkTokens("prompt", 2)).isInstanceOf(PromptTooLongException.class);
    }

    @ParameterizedTest(name = "context {0}, configured {1}")
    @CsvSource(delimiter = '|', textBlock = """
            512 | 100  | 100 | The prompt limit of this gateway is 100 tokens; the prompt (input_ids) has 101 tokens
            512 | 511  | 511 | This model's maximum context length is 512 tokens; the prompt (input_ids) has 512 tokens and at least one must remain for the completion
            512 | 4096 | 511 | This model's maximum context length is 512 tokens; the prompt (input_ids) has 512 tokens and at least one must remain for the completion
            """)
    void tooManyTokens_messageNamesTheLimitThatWasHit(int context, int configured, int effective, String message) {
        PromptLimits l = new PromptLimits(context, configured, OptionalInt.of(4), 8);
        assertThat(l.maxPromptTokens()).isEqualTo(effective);
        l.checkTokens("prompt", effective);
        assertThatThrownBy(() -> l.checkTokens("input_ids", effective + 1))
                .isInstanceOfSatisfying(PromptTooLongException.class, e -> {
                    assertThat(e.field()).isEqualTo("input_ids");
                    assertThat(e.getMessage()).isEqualTo(message);
                });
    }

    @Test
    void configuredLimit_namedInTheByteRefusalsToo() {
        PromptLimits l = new PromptLimits(512, 10, OptionalInt.of(4), 8);
        assertThat(l.maxPromptBytes()).isEqualTo(40);
        l.checkText("prompt", "a".repeat(40));
        assertThatThrownBy(() -> l.checkText("prompt", "a".repeat(41))).hasMessage("The prompt limit of this gateway "
                + "is 10 tokens; prompt has 41 bytes of text, more than 10 tokens can hold (at most 40 bytes)");
        l.checkChatBytes("messages", 40);
        assertThatThrownBy(() -> l.checkChatBytes("messages", 41)).hasMessage("The prompt limit of this gateway is 10 "
                + "tokens; the contents of messages have more than 40 bytes of text, more than 10 tokens can hold");
    }

    @Test
    void tokenizerWithoutAByteBound_neverRefusesByBytes_onlyByTokens() {
        PromptLimits l = new PromptLimits(512, 512, OptionalInt.empty(), 8);
        l.checkText("prompt", "a".repeat(1_000_000));
        l.checkChatBytes("messages", Long.MAX_VALUE);
        assertThatThrownBy(() -> l.checkTokens("prompt", 512)).isInstanceOf(PromptTooLongException.class);
    }

    @Test
    void byteBound_doesNotOverflow_forHugeLimits() {
        PromptLimits l = new PromptLimits(Integer.MAX_VALUE, Integer.MAX_VALUE, OptionalInt.of(1024), 8);
        assertThat(l.maxPromptBytes()).isEqualTo((long) (Integer.MAX_VALUE - 1) * 1024);
    }
}
