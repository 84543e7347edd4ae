package io.moemesh.gateway.http;

/** An error with its OpenAI HTTP status, type and code (https://platform.openai.com/docs/guides/error-codes). */
public final class OpenAiException extends RuntimeException {
    private final int status;
    private final String type;
    private final String code;
    private final String param;

    public OpenAiException(int status, String type, String code, String param, String message) {
        super(message);
        this.status = status;
        this.type = type;
        this.code = code;
        this.param = param;
    }

    public static OpenAiException invalid(String param, String message) {
        return new OpenAiException(400, "invalid_request_error", null, param, message);
    }

    public int status() {
        return status;
    }

    public String type() {
        return type;
    }

    public String code() {
        return code;
    }

    public String param() {
        return param;
    }
}
