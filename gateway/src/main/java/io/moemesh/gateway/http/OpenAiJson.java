package io.moemesh.gateway.http;

import tools.jackson.core.JsonParser;
import tools.jackson.core.JsonToken;

/**
 * Reading single values off the token stream of a request body, shared by {@link OpenAiRequestParser} and
 * {@link ChatMessagesParser}: each call starts at a value's first token and leaves the parser at its last one.
 */
final class OpenAiJson {
    private OpenAiJson() {
    }

    /** Skips the value that starts with {@code t}. */
    static void skip(JsonParser p, JsonToken t) {
        if (t == JsonToken.START_OBJECT || t == JsonToken.START_ARRAY) {
            p.skipChildren();
        }
    }

    /** What a value is, for messages: its JSON type, or a number's text (cut short: it may be megabytes long). */
    static String describe(JsonParser p, JsonToken t) {
        return switch (t) {
            case VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT -> {
                String s = p.getString();
                yield s.length() > 40 ? s.substring(0, 40) + "… (" + s.length() + " characters)" : s;
            }
            case VALUE_STRING -> "a string";
            case VALUE_TRUE, VALUE_FALSE -> "a boolean";
            case VALUE_NULL -> "null";
            case START_OBJECT -> "an object";
            case START_ARRAY -> "an array";
            default -> String.valueOf(t);
        };
    }

    /** A string or null; anything else is refused naming {@code name}. */
    static String string(JsonParser p, String name, JsonToken t) {
        if (t == JsonToken.VALUE_NULL) {
            return null;
        }
        if (t != JsonToken.VALUE_STRING) {
            throw OpenAiException.invalid(name, name + " must be a string, got " + describe(p, t));
        }
        return p.getString();
    }

    /** A boolean or null; anything else is refused naming {@code name}. */
    static Boolean bool(JsonParser p, String name, JsonToken t) {
        if (t == JsonToken.VALUE_NULL) {
            return null;
        }
        if (t != JsonToken.VALUE_TRUE && t != JsonToken.VALUE_FALSE) {
            throw OpenAiException.invalid(name, name + " must be true or false, got " + describe(p, t));
        }
        return t == JsonToken.VALUE_TRUE;
    }
}
