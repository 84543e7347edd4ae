package io.moemesh.gateway.serving;

/**
 * A prompt that cannot fit the model's context (or the configured prompt limit): HTTP 400 with OpenAI's code
 * {@code context_length_exceeded}, gRPC INVALID_ARGUMENT. {@link #field()} names the request field that holds it.
 */
public final class PromptTooLongException extends IllegalArgumentException {
    private final String field;

    public PromptTooLongException(String field, String message) {
        super(message);
        this.field = field;
    }

    public String field() {
        return field;
    }
}
