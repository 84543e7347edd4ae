package io.moemesh.model.chat;

import java.util.Objects;

/**
 * One message of a conversation, as the {@code messages} list of transformers' {@code apply_chat_template}
 * holds it: {@code {"role": ..., "content": ...}}.
 *
 * @param role    "system", "user", "assistant" or whatever the template understands
 * @param content the text; may be null (templates then see None)
 */
public record ChatMessage(String role, String content) {
    public ChatMessage {
        Objects.requireNonNull(role, "role");
    }

    public static ChatMessage system(String content) {
        return new ChatMessage("system", content);
    }

    public static ChatMessage user(String content) {
        return new ChatMessage("user", content);
    }

    public static ChatMessage assistant(String content) {
        return new ChatMessage("assistant", content);
    }
}
