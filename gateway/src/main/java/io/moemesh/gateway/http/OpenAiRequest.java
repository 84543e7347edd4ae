package io.moemesh.gateway.http;

import io.moemesh.model.chat.ChatMessage;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import tools.jackson.databind.JsonNode;

/**
 * The parameters of a completions or chat completions request, validated. Parameters MoE Mesh does not
 * implement are refused with 400 naming them, never silently ignored (a client relying on a penalty or on
 * n > 1 would get a wrong answer otherwise).
 *
 * @param prompt    completions: the prompt text (null when promptIds is given)
 * @param promptIds completions: token ids given directly
 * @param messages  chat: the conversation
 * @param maxTokens -1 when absent (completions then default to 16, chat to the rest of the context)
 * @param logprobs  -1: none; n: the sampled token's logprob and n alternatives
 */
record OpenAiRequest(String model, String prompt, int[] promptIds, List<ChatMessage> messages, int maxTokens,
                     List<String> stop, double temperature, double topP, int topK, Long seed, boolean stream,
                     boolean includeUsage, int logprobs, boolean ignoreEos) {

    /** Unsupported parameter → the value that means "not used" (null: any presence is refused). */
    private static final Map<String, Object> UNSUPPORTED = Map.ofEntries(
            Map.entry("frequency_penalty", 0), Map.entry("presence_penalty", 0), Map.entry("repetition_penalty", 1),
            Map.entry("n", 1), Map.entry("best_of", 1), Map.entry("echo", false), Map.entry("logit_bias", Map.of()),
            Map.entry("tools", List.of()), Map.entry("tool_choice", "none"), Map.entry("functions", List.of()),
            Map.entry("function_call", "none"), Map.entry("suffix", ""), Map.entry("audio", Map.of()),
            Map.entry("prediction", Map.of()), Map.entry("parallel_tool_calls", false),
            Map.entry("min_tokens", 0));

    static OpenAiRequest parse(JsonNode body, boolean chat) {
        if (body == null || !body.isObject()) {
            throw OpenAiException.invalid(null, "the request body must be a JSON object");
        }
        List<String> refused = new ArrayList<>();
        for (var e : UNSUPPORTED.entrySet()) {
            JsonNode v = body.get(e.getKey());
            if (v != null && !v.isNull() && !neutral(v, e.getValue())) {
                refused.add(e.getKey());
            }
        }
        JsonNode format = body.get("response_format");
        if (format != null && !format.isNull() && !"text".equals(format.path("type").stringValue(""))) {
            refused.add("response_format");
        }
        if (!refused.isEmpty()) {
            throw OpenAiException.invalid(refused.getFirst(), "unsupported parameter(s): " + String.join(", ", refused));
        }
        String model = string(body, "model", true);
        String prompt = null;
        int[] promptIds = null;
        List<ChatMessage> messages = null;
        if (chat) {
            messages = messages(body.get("messages"));
        } else {
            JsonNode p = body.get("prompt");
            if (p != null && p.isArray() && p.size() == 1 && p.get(0).isString()) {
                p = p.get(0);
            }
            if (p != null && p.isString()) {
                prompt = p.stringValue();
            } else if (p != null && p.isArray() && p.size() > 0 && p.get(0).isIntegralNumber()) {
                promptIds = new int[p.size()];
                for (int i = 0; i < promptIds.length; i++) {
                    promptIds[i] = p.get(i).intValue();
                }
            } else {
                throw OpenAiException.invalid("prompt", "prompt must be a string or an array of token ids"
                        + " (batches of prompts are not supported: send one request per prompt)");
            }
        }
        int maxTokens = integer(body, chat && body.has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens",
                -1, 1, Integer.MAX_VALUE);
        int logprobs = -1;
        if (chat) {
            if (bool(body, "logprobs", false)) {
                logprobs = integer(body, "top_logprobs", 0, 0, 5);
            } else if (body.has("top_logprobs") && !body.get("top_logprobs").isNull()) {
                throw OpenAiException.invalid("top_logprobs", "top_logprobs needs logprobs: true");
            }
        } else {
            logprobs = integer(body, "logprobs", -1, 0, 5);
        }
        JsonNode opts = body.get("stream_options");
        boolean stream = bool(body, "stream", false);
        boolean includeUsage = opts != null && opts.isObject() && opts.path("include_usage").booleanValue(false);
        if (opts != null && !opts.isNull() && !stream) {
            throw OpenAiException.invalid("stream_options", "stream_options is only allowed with stream: true");
        }
        JsonNode seed = body.get("seed");
        if (seed != null && !seed.isNull() && !seed.isIntegralNumber()) {
            throw OpenAiException.invalid("seed", "seed must be an integer");
        }
        return new OpenAiRequest(model, prompt, promptIds, messages, maxTokens, stop(body.get("stop")),
                number(body, "temperature", 1.0, 0, 2), number(body, "top_p", 1.0, 0, 1), integer(body, "top_k", 0, -1, 1 << 20),
                seed == null || seed.isNull() ? null : seed.longValue(), stream, includeUsage, logprobs,
                bool(body, "ignore_eos", false));
    }

    private static boolean neutral(JsonNode v, Object neutral) {
        return switch (neutral) {
            case Integer i -> v.isNumber() && v.doubleValue() == i;
            case Boolean b -> v.isBoolean() && v.booleanValue() == b;
            case String s -> v.isString() && v.stringValue().equals(s);
            case Map<?, ?> m -> v.isObject() && v.isEmpty();
            case List<?> l -> v.isArray() && v.isEmpty();
            default -> false;
        };
    }

    private static List<ChatMessage> messages(JsonNode n) {
        if (n == null || !n.isArray() || n.isEmpty()) {
            throw OpenAiException.invalid("messages", "messages must be a non-empty array");
        }
        List<ChatMessage> out = new ArrayList<>();
        for (int i = 0; i < n.size(); i++) {
            JsonNode m = n.get(i);
            String role = m.path("role").stringValue(null);
            JsonNode content = m.get("content");
            if (role == null || !List.of("system", "user", "assistant", "developer").contains(role)) {
                throw OpenAiException.invalid("messages[" + i + "].role", "messages[" + i + "].role must be system, "
                        + "user, assistant or developer");
            }
            String text;
            if (content != null && content.isString()) {
                text = content.stringValue();
            } else if (content != null && content.isArray()) {
                StringBuilder sb = new StringBuilder();
                for (JsonNode part : content.values()) {
                    if (!"text".equals(part.path("type").stringValue(""))) {
                        throw OpenAiException.invalid("messages[" + i + "].content", "only text content parts are supported");
                    }
                    sb.append(part.path("text").stringValue(""));
                }
                text = sb.toString();
            } else {
                throw OpenAiException.invalid("messages[" + i + "].content", "messages[" + i + "].content must be a string");
            }
            out.add(new ChatMessage(role.equals("developer") ? "system" : role, text));
        }
        return out;
    }

    private static List<String> stop(JsonNode n) {
        if (n == null || n.isNull()) {
            return List.of();
        }
        if (n.isString()) {
            return List.of(n.stringValue());
        }
        if (n.isArray() && n.size() <= 4) {
            List<String> out = new ArrayList<>();
            for (JsonNode s : n.values()) {
                if (!s.isString()) {
                    throw OpenAiException.invalid("stop", "stop must be a string or an array of up to 4 strings");
                }
                out.add(s.stringValue());
            }
            return out;
        }
        throw OpenAiException.invalid("stop", "stop must be a string or an array of up to 4 strings");
    }

    private static String string(JsonNode body, String key, boolean required) {
        JsonNode n = body.get(key);
        if (n == null || n.isNull()) {
            if (required) {
                throw OpenAiException.invalid(key, key + " is required");
            }
            return null;
        }
        if (!n.isString()) {
            throw OpenAiException.invalid(key, key + " must be a string");
        }
        return n.stringValue();
    }

    private static boolean bool(JsonNode body, String key, boolean dflt) {
        JsonNode n = body.get(key);
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.isBoolean()) {
            throw OpenAiException.invalid(key, key + " must be true or false");
        }
        return n.booleanValue();
    }

    private static int integer(JsonNode body, String key, int dflt, int min, int max) {
        JsonNode n = body.get(key);
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.isIntegralNumber() || !n.canConvertToInt() || n.intValue() < min || n.intValue() > max) {
            throw OpenAiException.invalid(key, key + " must be an integer in [" + min + ", " + max + "], got " + n);
        }
        return n.intValue();
    }

    private static double number(JsonNode body, String key, double dflt, double min, double max) {
        JsonNode n = body.get(key);
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.isNumber() || n.doubleValue() < min || n.doubleValue() > max) {
            throw OpenAiException.invalid(key, key + " must be a number in [" + min + ", " + max + "], got " + n);
        }
        return n.doubleValue();
    }
}
