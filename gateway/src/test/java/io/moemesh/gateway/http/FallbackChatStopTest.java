package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.chat.ChatMessage;
import io.moemesh.model.chat.ChatTemplate;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * A chat rendered with the ChatML fallback (a model without a chat template) stops at the fallback's end of turn,
 * besides the caller's stop strings: a base model would otherwise write {@code <|im_end|>} as text and run on into a
 * turn of its own. A model's own template decides its own ending (its EOS), so nothing is added there.
 */
class FallbackChatStopTest {

    @Test
    void fallbackChat_stopsAtTheEndOfTurn_besidesTheCallersStops() {
        assertThat(OpenAiController.stops(List.of(), true)).containsExactly("<|im_end|>");
        assertThat(OpenAiController.stops(List.of("\n\n", "User:"), true)).containsExactly("\n\n", "User:", "<|im_end|>");
        assertThat(OpenAiController.stops(List.of("<|im_end|>"), true)).as("named once").containsExactly("<|im_end|>");
    }

    @Test
    void chatWithTheModelsOwnTemplate_orACompletion_keepsOnlyTheCallersStops() {
        assertThat(OpenAiController.stops(List.of(), false)).isEmpty();
        assertThat(OpenAiController.stops(List.of("User:"), false)).containsExactly("User:");
    }

    @Test
    void theStopIsWhereTheFallbackEndsATurn() {
        String rendered = ChatTemplate.of(OpenAiController.DEFAULT_CHAT_TEMPLATE, Map.of())
                .render(List.of(new ChatMessage("user", "Hi"), new ChatMessage("assistant", "Hello")), true);
        assertThat(rendered).isEqualTo("<|im_start|>user\nHi" + OpenAiController.FALLBACK_END_OF_TURN
                + "\n<|im_start|>assistant\nHello" + OpenAiController.FALLBACK_END_OF_TURN + "\n<|im_start|>assistant\n");
    }
}
