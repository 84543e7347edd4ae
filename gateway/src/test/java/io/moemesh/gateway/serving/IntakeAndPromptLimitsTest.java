package io.moemesh.gateway.serving;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The intake limiter and the prompt limits as plain objects. */
class IntakeAndPromptLimitsTest {

    @Test
    void intake_smallRequestsAreNeverLimited_largeOnesUpToTheCap_thenOverloadedAtOnce() {
        IntakeLimiter l = new IntakeLimiter(100, 2);
        for (int i = 0; i < 10; i++) {
            l.admit(100);
        }
        IntakeLimiter.Permit a = l.admit(101);
        IntakeLimiter.Permit b = l.admit(5_000_000);
        assertThatThrownBy(() -> l.admit(101)).isInstanceOfSatisfying(OverloadedException.class, e -> {
            assertThat(e.retryAfterSeconds()).isEqualTo(1);
            assertThat(e.getMessage()).contains("2 requests larger than 100 bytes");
        });
        a.close();
        a.close();
        assertThat(l.largeInIntake()).as("closing twice releases once").isEqualTo(1);
        l.admit(101).close();
        b.close();
        assertThat(l.largeInIntake()).isZero();
    }

    private static final PromptLimits LIMITS = new PromptLimits(512, 512, OptionalInt.of(13), 4);

    @Test
    void prompt_limitIsContextMinusOne_andTheByteBoundIsLimitTimesBytesPerToken() {
        assertThat(LIMITS.maxPromptTokens()).isEqualTo(511);
        assertThat(LIMITS.maxPromptBytes()).isEqualTo(511 * 13);
        assertThat(new PromptLimits(512, 100, OptionalInt.of(13), 4).maxPromptTokens()).isEqualTo(100);
        assertThat(new PromptLimits(512, 100, OptionalInt.empty(), 4).maxPromptBytes()).isEqualTo(Long.MAX_VALUE);
    }

    @Test
    void prompt_textOverTheByteBound_isTooLong_namingTheField_atTheBoundIsNot() {
        LIMITS.checkText("prompt", "a".repeat(511 * 13));
        assertThatThrownBy(() -> LIMITS.checkText("prompt", "a".repeat(511 * 13 + 1)))
                .isInstanceOfSatisfying(PromptTooLongException.class, e -> {
                    assertThat(e.field()).isEqualTo("prompt");
                    assertThat(e.getMessage()).contains("maximum context length is 512 tokens")
                            .contains("6644 bytes of text");
                });
        // Three bytes per character: a third as many characters are already too many bytes.
        assertThatThrownBy(() -> LIMITS.checkText("chat", "€".repeat(511 * 13 / 3 + 1)))
                .isInstanceOf(PromptTooLongException.class);
        LIMITS.checkTokens("prompt", 511);
        assertThatThrownBy(() -> LIMITS.checkTokens("prompt", 512)).isInstanceOf(PromptTooLongException.class)
                .hasMessageContaining("the prompt (prompt) has 512 tokens");
    }

    @Test
    void chat_messageCountAndContentBytes_areChecked() {
        LIMITS.checkChatMessages("messages", 4);
        assertThatThrownBy(() -> LIMITS.checkChatMessages("chat.messages", 5))
                .isInstanceOf(IllegalArgumentException.class).hasMessage("chat.messages has more than 4 messages, the "
                        + "limit of this gateway");
        assertThatThrownBy(() -> LIMITS.checkChatBytes("messages", 511 * 13 + 1))
                .isInstanceOfSatisfying(PromptTooLongException.class, e -> assertThat(e.field()).isEqualTo("messages"));
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "ascii", "é", "€", "😀", "a😀b€é", "\uD800", "x\uDC00y", "\uD83D"})
    void utf8Length_isWhatStringEncodesTo(String s) {
        assertThat(PromptLimits.utf8Length(s)).isEqualTo(s.getBytes(StandardCharsets.UTF_8).length);
    }
}
