package io.moemesh.model.chat;

/**
 * A conversation whose rendered chat would be longer than the render may output ({@link ChatTemplate#render}'s
 * limit): the output itself, or a value the template builds on the way (a message repeated by a count from the
 * request, a printed list). An {@link IllegalArgumentException}: the conversation is too long, as a prompt over the
 * context is; the gateway reports it as such, naming the field.
 */
public final class RenderedChatTooLongException extends IllegalArgumentException {
    private final long limit;

    public RenderedChatTooLongException(long limit) {
        super("the chat template's output for this conversation would be longer than " + limit + " characters, the "
                + "limit of this render");
        this.limit = limit;
    }

    /** The characters the render could output at most. */
    public long limit() {
        return limit;
    }
}
