package io.moemesh.model.tokenizer;

import io.moemesh.model.ModelFormatException;
import tools.jackson.databind.JsonNode;

/**
 * Typed field access on a Jackson tree that reports problems as {@link ModelFormatException}s naming the file and
 * the JSON path ({@code tokenizer.json: model.merges[3] ...}).
 */
record Json(String source) {

    ModelFormatException error(String path, String problem) {
        return new ModelFormatException(source + ": " + path + " " + problem);
    }

    JsonNode object(JsonNode parent, String field, String path) {
        JsonNode n = parent.get(field);
        if (n == null || !n.isObject()) {
            throw error(join(path, field), n == null || n.isNull() ? "is missing" : "must be an object");
        }
        return n;
    }

    JsonNode array(JsonNode parent, String field, String path) {
        JsonNode n = parent.get(field);
        if (n == null || !n.isArray()) {
            throw error(join(path, field), n == null || n.isNull() ? "is missing" : "must be an array");
        }
        return n;
    }

    String string(JsonNode parent, String field, String path) {
        String s = optString(parent, field, path);
        if (s == null) {
            throw error(join(path, field), "is missing");
        }
        return s;
    }

    /** The string value, or null when absent or JSON null. */
    String optString(JsonNode parent, String field, String path) {
        JsonNode n = parent.get(field);
        if (n == null || n.isNull()) {
            return null;
        }
        if (!n.isString()) {
            throw error(join(path, field), "must be a string");
        }
        return n.stringValue();
    }

    /** A field holding exactly one character (Rust {@code char}), as a code point. */
    int character(JsonNode parent, String field, String path) {
        String s = string(parent, field, path);
        if (s.codePointCount(0, s.length()) != 1) {
            throw error(join(path, field), "must be a single character, got \"" + s + "\"");
        }
        return s.codePointAt(0);
    }

    boolean bool(JsonNode parent, String field, String path, boolean defaultValue) {
        JsonNode n = parent.get(field);
        if (n == null || n.isNull()) {
            return defaultValue;
        }
        if (!n.isBoolean()) {
            throw error(join(path, field), "must be true or false");
        }
        return n.booleanValue();
    }

    int nonNegativeInt(JsonNode parent, String field, String path, int defaultValue) {
        JsonNode n = parent.get(field);
        if (n == null || n.isNull()) {
            return defaultValue;
        }
        if (!n.isIntegralNumber() || !n.canConvertToInt() || n.intValue() < 0) {
            throw error(join(path, field), "must be a non-negative integer");
        }
        return n.intValue();
    }

    static String join(String path, String field) {
        return path.isEmpty() ? field : path + "." + field;
    }
}
