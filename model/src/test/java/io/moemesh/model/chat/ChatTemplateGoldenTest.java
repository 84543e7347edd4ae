package io.moemesh.model.chat;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.tokenizer.GoldenData;
import io.moemesh.model.tokenizer.Tokenizer;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Every {@code chat[]} entry of every golden.json: rendered text and ids, or the exact error. */
class ChatTemplateGoldenTest {

    static List<GoldenData.Chat> chats() {
        return GoldenData.chats();
    }

    static List<GoldenData.Chat> renderedChats() {
        return chats().stream().filter(c -> c.error() == null).toList();
    }

    static List<GoldenData.Chat> failingChats() {
        return chats().stream().filter(c -> c.error() != null).toList();
    }

    private static ChatTemplate template(String style) {
        return ChatTemplate.fromTokenizerConfig(GoldenData.file(style, "tokenizer_config.json")).orElseThrow();
    }

    private static List<ChatMessage> messages(GoldenData.Chat c) {
        return c.messages().stream().map(m -> new ChatMessage(m.role(), m.content())).toList();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("renderedChats")
    void render_matchesReferenceText_forEveryGoldenChat(GoldenData.Chat c) {
        assertThat(template(c.style()).render(messages(c), c.addGenerationPrompt())).isEqualTo(c.text());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("renderedChats")
    void encodeOfRenderedText_matchesReferenceIds_forEveryGoldenChat(GoldenData.Chat c) {
        Tokenizer tokenizer = Tokenizer.load(GoldenData.file(c.style(), "tokenizer.json"));
        String text = template(c.style()).render(messages(c), c.addGenerationPrompt());
        assertThat(tokenizer.encode(text)).containsExactly(c.ids());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("failingChats")
    void render_throwsReferenceError_whenTemplateRaises(GoldenData.Chat c) {
        assertThatThrownBy(() -> template(c.style()).render(messages(c), c.addGenerationPrompt()))
                .isInstanceOf(ChatTemplateException.class)
                .hasMessage(c.error());
    }
}
