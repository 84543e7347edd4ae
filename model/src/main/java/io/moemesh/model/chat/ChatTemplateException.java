package io.moemesh.model.chat;

/**
 * A chat template refused: when it is loaded, a template with a syntax error, an unknown filter, test, function or
 * tag, an expression of literals that fails, a special token it reads that no file defines, or a construct this
 * engine would render differently from Jinja; when it renders, a conversation the template refuses itself with
 * {@code raise_exception} (e.g. roles that do not alternate) or whose values make Python fail inside it
 * ({@code TypeError}, {@code ValueError}, {@code ZeroDivisionError}, Jinja's {@code UndefinedError}: iterating a
 * None, tojson of an undefined value, a string minus an int, a zero divisor). The message reads like
 * the Python exception transformers would raise, {@code "<ExceptionType>: <message>"}, e.g.
 * {@code "TemplateError: Conversation roles must alternate user/assistant/user/assistant/..."}. It is an
 * {@link IllegalArgumentException} because the argument is at fault: the template given to
 * {@link ChatTemplate#of}, or the conversation given to {@link ChatTemplate#render}. A template that fails on its
 * own while rendering is a {@link BrokenChatTemplateException}.
 */
public final class ChatTemplateException extends IllegalArgumentException {
    public ChatTemplateException(String message) {
        super(message);
    }

    public ChatTemplateException(String message, Throwable cause) {
        super(message, cause);
    }
}
