package io.moemesh.model.chat;

/**
 * A chat template failed on its own while rendering: something in it this engine cannot evaluate (an attribute
 * Jinjava's own objects lack, such as {@code loop['previtem']}, an operation Jinjava refuses, a string's
 * printf-style {@code %}), or an output with a lone surrogate the conversation did not bring. Not an
 * {@link IllegalArgumentException}, unlike {@link ChatTemplateException}: the request is not at fault, the served
 * model's template is (a server error, logged). Constructs that can be seen in the source, and expressions of
 * literals that fail, are refused when the template is loaded instead ({@link ChatTemplate#of}).
 */
public final class BrokenChatTemplateException extends RuntimeException {
    public BrokenChatTemplateException(String message, Throwable cause) {
        super(message, cause);
    }
}
