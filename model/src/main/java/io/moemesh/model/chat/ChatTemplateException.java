package io.moemesh.model.chat;

/**
 * A chat template that cannot be rendered: it called {@code raise_exception} (e.g. roles that do not alternate),
 * or it has a syntax error or uses an unknown filter. The message reads like the Python exception transformers
 * would raise, {@code "<ExceptionType>: <message>"}, e.g.
 * {@code "TemplateError: Conversation roles must alternate user/assistant/user/assistant/..."}. It is an
 * {@link IllegalArgumentException} because the conversation or the template is at fault, never the server.
 */
public final class ChatTemplateException extends IllegalArgumentException {
    public ChatTemplateException(String message) {
        super(message);
    }

    public ChatTemplateException(String message, Throwable cause) {
        super(message, cause);
    }
}
