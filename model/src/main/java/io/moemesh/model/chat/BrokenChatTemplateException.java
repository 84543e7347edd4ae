package io.moemesh.model.chat;

/**
 * A chat template failed on its own while rendering: something in it this engine cannot evaluate (an attribute
 * Jinjava's objects lack, such as {@code loop['previtem']}, an operation Jinjava refuses), which no conversation
 * could avoid. Not an {@link IllegalArgumentException}, unlike {@link ChatTemplateException}: the request is not
 * at fault, the served model's template is (a server error, logged). Constructs that can be seen in the source are
 * refused when the template is loaded instead ({@link ChatTemplate#of}).
 */
public final class BrokenChatTemplateException extends RuntimeException {
    public BrokenChatTemplateException(String message, Throwable cause) {
        super(message, cause);
    }
}
