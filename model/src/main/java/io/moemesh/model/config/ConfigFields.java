package io.moemesh.model.config;

import io.moemesh.model.ModelFormatException;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import tools.jackson.databind.JsonNode;

/** Typed access to the keys of one JSON object, with errors that name the file and the key. */
final class ConfigFields {
    private final JsonNode root;
    private final String source;

    ConfigFields(JsonNode root, String source) {
        if (root == null || !root.isObject()) {
            throw new ModelFormatException(source + ": expected a JSON object at the top level");
        }
        this.root = root;
        this.source = source;
    }

    String source() {
        return source;
    }

    JsonNode node(String key) {
        JsonNode n = root.get(key);
        return n == null || n.isNull() ? null : n;
    }

    boolean present(String key) {
        return node(key) != null;
    }

    int positiveInt(String key) {
        return optionalInt(key).filter(v -> v > 0)
                .orElseThrow(() -> new ModelFormatException(source + ": \"" + key + "\" must be a positive integer, got "
                        + describe(root.get(key))));
    }

    Optional<Integer> optionalInt(String key) {
        JsonNode n = node(key);
        if (n == null) {
            return Optional.empty();
        }
        if (!n.isIntegralNumber() || !n.canConvertToInt()) {
            throw new ModelFormatException(source + ": \"" + key + "\" must be an integer, got " + describe(n));
        }
        return Optional.of(n.intValue());
    }

    /**
     * A number that must be finite and above zero (rope_theta, rms_norm_eps): zero, a negative, an overflowing
     * literal such as 1e400 or a string like "1000.0" is refused, never replaced by the fallback, which is only
     * for the key being absent or null (as transformers' config classes take their default then).
     */
    double positiveNumber(String key, double fallback) {
        return positiveNumber(node(key), key, fallback);
    }

    /** {@link #positiveNumber(String, double)} for a node found elsewhere (a nested key), named {@code key}. */
    double positiveNumber(JsonNode n, String key, double fallback) {
        if (n == null || n.isNull()) {
            return fallback;
        }
        double v = n.isNumber() ? n.doubleValue() : Double.NaN;
        if (!(v > 0) || Double.isInfinite(v)) {
            throw new ModelFormatException(source + ": \"" + key + "\" must be a finite number above 0, got " + describe(n));
        }
        return v;
    }

    boolean bool(String key, boolean fallback) {
        JsonNode n = node(key);
        if (n == null) {
            return fallback;
        }
        if (!n.isBoolean()) {
            throw new ModelFormatException(source + ": \"" + key + "\" must be true or false, got " + describe(n));
        }
        return n.booleanValue();
    }

    Optional<String> string(String key) {
        JsonNode n = node(key);
        if (n == null) {
            return Optional.empty();
        }
        if (!n.isString()) {
            throw new ModelFormatException(source + ": \"" + key + "\" must be a string, got " + describe(n));
        }
        return Optional.of(n.stringValue());
    }

    /** A token id given as a number or a list of numbers (eos_token_id in many checkpoints). */
    List<Integer> intOrIntList(String key) {
        JsonNode n = node(key);
        List<Integer> out = new ArrayList<>();
        if (n == null) {
            return out;
        }
        if (n.isArray()) {
            for (JsonNode e : n.values()) {
                if (!e.isIntegralNumber() || !e.canConvertToInt() || e.intValue() < 0) {
                    throw new ModelFormatException(source + ": \"" + key + "\" must hold non-negative integers, got " + describe(e));
                }
                out.add(e.intValue());
            }
            return out;
        }
        if (!n.isIntegralNumber() || !n.canConvertToInt() || n.intValue() < 0) {
            throw new ModelFormatException(source + ": \"" + key + "\" must be a token id or a list of them, got " + describe(n));
        }
        out.add(n.intValue());
        return out;
    }

    static String describe(JsonNode n) {
        if (n == null) {
            return "nothing (the key is missing)";
        }
        String text = n.toString();
        return text.length() > 60 ? text.substring(0, 60) + "…" : text;
    }
}
