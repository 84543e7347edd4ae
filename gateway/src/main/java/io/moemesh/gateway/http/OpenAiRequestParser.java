package io.moemesh.gateway.http;

import io.moemesh.gateway.serving.PromptLimits;
import io.moemesh.gateway.serving.ServingRequest;
import io.moemesh.model.chat.ChatMessage;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import tools.jackson.core.JacksonException;
import tools.jackson.core.JsonParser;
import tools.jackson.core.JsonToken;
import tools.jackson.databind.json.JsonMapper;

/**
 * Reads an OpenAI request body token by token straight into an {@link OpenAiRequest}, never into a JSON tree: a
 * tree costs tens of bytes per token of input (a 4 MB body of {@code [[],[],...]} would be over 100 MB), while
 * here memory grows only with what is kept (the prompt, the messages, the ids), and a chat is refused as soon as
 * its message count or its content bytes pass the limits, before the rest of the body is read. Unknown fields
 * are skipped without being materialised. Duplicate keys: the last one wins, as in Python's json module.
 */
final class OpenAiRequestParser {
    /** A neutral value: either boolean (see parallel_tool_calls). */
    private enum AnyBoolean { ANY }

    /**
     * Unsupported parameter → the value that means "not used" (refused when present with any other value). null
     * means "not used" for each of them too: clients send defaults, some as null. parallel_tool_calls changes nothing
     * without tools (and tools are refused), so either value is accepted: true is OpenAI's own default.
     */
    private static final Map<String, Object> UNSUPPORTED = Map.ofEntries(
            Map.entry("frequency_penalty", 0), Map.entry("presence_penalty", 0), Map.entry("repetition_penalty", 1),
            Map.entry("n", 1), Map.entry("best_of", 1), Map.entry("echo", false), Map.entry("logit_bias", Map.of()),
            Map.entry("tools", List.of()), Map.entry("tool_choice", "none"), Map.entry("functions", List.of()),
            Map.entry("function_call", "none"), Map.entry("suffix", ""), Map.entry("audio", Map.of()),
            Map.entry("prediction", Map.of()), Map.entry("parallel_tool_calls", AnyBoolean.ANY),
            Map.entry("min_tokens", 0));
    private static final Set<String> ROLES = Set.of("system", "user", "assistant", "developer");
    private static final String PROMPT_SHAPE = "prompt must be a string, an array of one string, or a non-empty "
            + "array of token ids (batches of prompts are not supported: send one request per prompt)";

    private final JsonParser p;
    private final boolean chat;
    private final PromptLimits limits;
    private final List<String> refused = new ArrayList<>();

    private OpenAiRequestParser(JsonParser p, boolean chat, PromptLimits limits) {
        this.p = p;
        this.chat = chat;
        this.limits = limits;
    }

    static OpenAiRequest parse(InputStream body, boolean chat, JsonMapper json, PromptLimits limits) {
        try (JsonParser p = json.createParser(body)) {
            return new OpenAiRequestParser(p, chat, limits).read();
        } catch (JacksonException e) {
            // The body stream's own refusals (413, 429) may arrive wrapped.
            for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
                if (c instanceof RuntimeException r && !(c instanceof JacksonException)) {
                    throw r;
                }
            }
            throw OpenAiException.invalid(null, "the request body is not valid JSON: " + e.getOriginalMessage());
        }
    }

    private OpenAiRequest read() {
        if (p.nextToken() != JsonToken.START_OBJECT) {
            throw OpenAiException.invalid(null, "the request body must be a JSON object");
        }
        String model = null;
        String prompt = null;
        int[] promptIds = null;
        List<ChatMessage> messages = null;
        Integer maxTokens = null;
        Integer maxCompletionTokens = null;
        List<String> stop = List.of();
        double temperature = 1.0;
        double topP = 1.0;
        int topK = 0;
        Long seed = null;
        Boolean stream = null;
        Boolean includeUsage = null;
        boolean streamOptions = false;
        Integer completionLogprobs = null;
        Boolean chatLogprobs = null;
        Integer topLogprobs = null;
        boolean ignoreEos = false;
        while (p.nextToken() == JsonToken.PROPERTY_NAME) {
            String name = p.currentName();
            JsonToken t = p.nextToken();
            switch (name) {
                case "model" -> model = string(name, t);
                case "prompt" -> {
                    if (chat) {
                        skip(t);
                    } else if (t == JsonToken.VALUE_STRING) {
                        prompt = p.getString();
                        promptIds = null;
                    } else if (t == JsonToken.START_ARRAY) {
                        prompt = null;
                        promptIds = null;
                        Object parsed = promptArray();
                        if (parsed instanceof String s) {
                            prompt = s;
                        } else {
                            promptIds = (int[]) parsed;
                        }
                    } else if (t == JsonToken.VALUE_NULL) {
                        prompt = null;
                        promptIds = null;
                    } else {
                        throw OpenAiException.invalid("prompt", PROMPT_SHAPE);
                    }
                }
                case "messages" -> {
                    if (chat) {
                        messages = messages(t);
                    } else {
                        skip(t);
                    }
                }
                case "max_tokens" -> maxTokens = integer(name, t, 1, Integer.MAX_VALUE);
                case "max_completion_tokens" -> maxCompletionTokens = integer(name, t, 1, Integer.MAX_VALUE);
                case "stop" -> stop = stop(t);
                case "temperature" -> temperature = number(name, t, 1.0, 0, 2);
                case "top_p" -> topP = number(name, t, 1.0, 0, 1);
                case "top_k" -> topK = orElse(integer(name, t, -1, 1 << 20), 0);
                case "seed" -> seed = seed(t);
                case "stream" -> stream = bool(name, t);
                case "stream_options" -> {
                    includeUsage = streamOptions(t);
                    streamOptions = t != JsonToken.VALUE_NULL;
                }
                case "logprobs" -> {
                    if (chat) {
                        chatLogprobs = bool(name, t);
                    } else {
                        completionLogprobs = integer(name, t, 0, 5);
                    }
                }
                case "top_logprobs" -> topLogprobs = integer(name, t, 0, 5);
                case "ignore_eos" -> ignoreEos = orElse(bool(name, t), false);
                // The last value of a repeated key decides, as for every other field: an earlier refusal goes.
                case "response_format" -> {
                    refused.remove(name);
                    if (!textFormat(t)) {
                        refused.add(name);
                    }
                }
                default -> {
                    Object neutral = UNSUPPORTED.get(name);
                    if (neutral == null) {
                        skip(t);
                    } else {
                        refused.remove(name);
                        if (t != JsonToken.VALUE_NULL && !neutral(t, neutral)) {
                            refused.add(name);
                        }
                    }
                }
            }
        }
        if (p.nextToken() != null) {
            throw OpenAiException.invalid(null, "the request body must hold one JSON object and nothing after it");
        }
        if (!refused.isEmpty()) {
            throw OpenAiException.invalid(refused.getFirst(), "unsupported parameter(s): " + String.join(", ", refused));
        }
        if (model == null) {
            throw OpenAiException.invalid("model", "model is required");
        }
        if (chat && (messages == null || messages.isEmpty())) {
            throw OpenAiException.invalid("messages", "messages must be a non-empty array");
        }
        if (!chat && prompt == null && promptIds == null) {
            throw OpenAiException.invalid("prompt", PROMPT_SHAPE);
        }
        boolean streaming = orElse(stream, false);
        if (streamOptions && !streaming) {
            throw OpenAiException.invalid("stream_options", "stream_options is only allowed with stream: true");
        }
        int logprobs;
        if (chat) {
            if (orElse(chatLogprobs, false)) {
                logprobs = orElse(topLogprobs, 0);
            } else if (topLogprobs != null) {
                throw OpenAiException.invalid("top_logprobs", "top_logprobs needs logprobs: true");
            } else {
                logprobs = -1;
            }
        } else {
            logprobs = orElse(completionLogprobs, -1);
        }
        // OpenAI deprecated max_tokens for max_completion_tokens, which wins when both are given. Honoured on
        // /v1/completions too: a client that moved to the new name must not silently get the default of 16.
        String maxParam = maxCompletionTokens != null ? "max_completion_tokens" : "max_tokens";
        int max = maxCompletionTokens != null ? maxCompletionTokens : orElse(maxTokens, -1);
        return new OpenAiRequest(model, prompt, promptIds, messages, max, maxParam, stop, temperature, topP, topK, seed,
                streaming, orElse(includeUsage, false), logprobs, ignoreEos);
    }

    private static <T> T orElse(T value, T dflt) {
        return value == null ? dflt : value;
    }

    /** Skips the value that starts with {@code t}. */
    private void skip(JsonToken t) {
        if (t == JsonToken.START_OBJECT || t == JsonToken.START_ARRAY) {
            p.skipChildren();
        }
    }

    /** What a value is, for messages: its JSON type, or a number's text (cut short). */
    private String describe(JsonToken t) {
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

    private String string(String name, JsonToken t) {
        if (t == JsonToken.VALUE_NULL) {
            return null;
        }
        if (t != JsonToken.VALUE_STRING) {
            throw OpenAiException.invalid(name, name + " must be a string, got " + describe(t));
        }
        return p.getString();
    }

    private Boolean bool(String name, JsonToken t) {
        if (t == JsonToken.VALUE_NULL) {
            return null;
        }
        if (t != JsonToken.VALUE_TRUE && t != JsonToken.VALUE_FALSE) {
            throw OpenAiException.invalid(name, name + " must be true or false, got " + describe(t));
        }
        return t == JsonToken.VALUE_TRUE;
    }

    private Integer integer(String name, JsonToken t, int min, int max) {
        if (t == JsonToken.VALUE_NULL) {
            return null;
        }
        if (t != JsonToken.VALUE_NUMBER_INT || p.getNumberType() != JsonParser.NumberType.INT
                || p.getIntValue() < min || p.getIntValue() > max) {
            throw OpenAiException.invalid(name, name + " must be an integer in [" + min + ", " + max + "], got "
                    + describe(t));
        }
        return p.getIntValue();
    }

    private double number(String name, JsonToken t, double dflt, double min, double max) {
        if (t == JsonToken.VALUE_NULL) {
            return dflt;
        }
        if (t != JsonToken.VALUE_NUMBER_INT && t != JsonToken.VALUE_NUMBER_FLOAT) {
            throw OpenAiException.invalid(name, name + " must be a number in [" + min + ", " + max + "], got "
                    + describe(t));
        }
        double v = p.getDoubleValue();
        if (!(v >= min && v <= max)) {
            throw OpenAiException.invalid(name, name + " must be a number in [" + min + ", " + max + "], got "
                    + describe(t));
        }
        return v;
    }

    private Long seed(JsonToken t) {
        if (t == JsonToken.VALUE_NULL) {
            return null;
        }
        if (t != JsonToken.VALUE_NUMBER_INT || p.getNumberType() == JsonParser.NumberType.BIG_INTEGER) {
            throw OpenAiException.invalid("seed", "seed must be an integer in [" + Long.MIN_VALUE + ", " + Long.MAX_VALUE
                    + "], got " + describe(t));
        }
        return p.getLongValue();
    }

    /** An array prompt: one string (returned as the String) or token ids (an int[]). */
    private Object promptArray() {
        JsonToken first = p.nextToken();
        if (first == JsonToken.VALUE_STRING) {
            String s = p.getString();
            if (p.nextToken() != JsonToken.END_ARRAY) {
                throw OpenAiException.invalid("prompt", PROMPT_SHAPE);
            }
            return s;
        }
        int[] ids = new int[16];
        int n = 0;
        for (JsonToken t = first; t != JsonToken.END_ARRAY; t = p.nextToken()) {
            if (t != JsonToken.VALUE_NUMBER_INT || p.getNumberType() != JsonParser.NumberType.INT || p.getIntValue() < 0) {
                throw OpenAiException.invalid("prompt", n == 0 && t != JsonToken.VALUE_NUMBER_INT ? PROMPT_SHAPE
                        : "prompt[" + n + "] must be a token id (an integer ≥ 0), got " + describe(t));
            }
            if (n == ids.length) {
                ids = Arrays.copyOf(ids, n * 2);
            }
            ids[n++] = p.getIntValue();
            // Refuse an id list that cannot fit as soon as it is one id too long, before reading the rest.
            limits.checkTokens("prompt", n);
        }
        if (n == 0) {
            throw OpenAiException.invalid("prompt", PROMPT_SHAPE);
        }
        return Arrays.copyOf(ids, n);
    }

    private List<ChatMessage> messages(JsonToken t) {
        if (t != JsonToken.START_ARRAY) {
            throw OpenAiException.invalid("messages", "messages must be a non-empty array, got " + describe(t));
        }
        List<ChatMessage> out = new ArrayList<>();
        long bytes = 0;
        for (JsonToken m = p.nextToken(); m != JsonToken.END_ARRAY; m = p.nextToken()) {
            int i = out.size();
            if (i == limits.maxChatMessages()) {
                throw OpenAiException.invalid("messages", "messages has more than " + limits.maxChatMessages()
                        + " messages, the limit of this gateway");
            }
            String at = "messages[" + i + "]";
            if (m != JsonToken.START_OBJECT) {
                throw OpenAiException.invalid(at, at + " must be an object with role and content, got " + describe(m));
            }
            String role = null;
            String content = null;
            while (p.nextToken() == JsonToken.PROPERTY_NAME) {
                String key = p.currentName();
                JsonToken v = p.nextToken();
                switch (key) {
                    case "role" -> role = string(at + ".role", v);
                    case "content" -> content = content(at + ".content", v);
                    default -> skip(v);
                }
            }
            if (role == null || !ROLES.contains(role)) {
                throw OpenAiException.invalid(at + ".role", at + ".role must be system, user, assistant or developer");
            }
            if (content == null) {
                throw OpenAiException.invalid(at + ".content", at + ".content must be a string or an array of text parts");
            }
            bytes += PromptLimits.utf8Length(content);
            limits.checkChatBytes("messages", bytes);
            out.add(new ChatMessage(role.equals("developer") ? "system" : role, content));
        }
        return out;
    }

    /** A message's content: a string, or text parts ({"type": "text", "text": "..."}) joined. */
    private String content(String at, JsonToken t) {
        if (t == JsonToken.VALUE_STRING) {
            return p.getString();
        }
        if (t != JsonToken.START_ARRAY) {
            throw OpenAiException.invalid(at, at + " must be a string or an array of text parts, got " + describe(t));
        }
        StringBuilder sb = new StringBuilder();
        int j = 0;
        for (JsonToken part = p.nextToken(); part != JsonToken.END_ARRAY; part = p.nextToken(), j++) {
            String pat = at + "[" + j + "]";
            if (part != JsonToken.START_OBJECT) {
                throw OpenAiException.invalid(pat, pat + " must be an object {\"type\": \"text\", \"text\": ...}, got "
                        + describe(part));
            }
            String type = null;
            String text = null;
            while (p.nextToken() == JsonToken.PROPERTY_NAME) {
                String key = p.currentName();
                JsonToken v = p.nextToken();
                switch (key) {
                    case "type" -> type = string(pat + ".type", v);
                    case "text" -> text = string(pat + ".text", v);
                    default -> skip(v);
                }
            }
            if (!"text".equals(type) || text == null) {
                throw OpenAiException.invalid(pat, "only text content parts are supported: " + pat
                        + " must be {\"type\": \"text\", \"text\": a string}");
            }
            sb.append(text);
            if (sb.length() > limits.maxPromptBytes()) {
                limits.checkChatBytes("messages", PromptLimits.utf8Length(sb));
            }
        }
        return sb.toString();
    }

    private List<String> stop(JsonToken t) {
        String shape = "stop must be a string or an array of up to " + OpenAiRequest.MAX_STOP + " strings";
        List<String> out = new ArrayList<>();
        if (t == JsonToken.VALUE_NULL) {
            return out;
        }
        if (t == JsonToken.VALUE_STRING) {
            out.add(p.getString());
        } else if (t == JsonToken.START_ARRAY) {
            for (JsonToken s = p.nextToken(); s != JsonToken.END_ARRAY; s = p.nextToken()) {
                if (s != JsonToken.VALUE_STRING || out.size() == OpenAiRequest.MAX_STOP) {
                    throw OpenAiException.invalid("stop", shape + ", got " + describe(s) + " at stop[" + out.size() + "]");
                }
                out.add(p.getString());
            }
        } else {
            throw OpenAiException.invalid("stop", shape + ", got " + describe(t));
        }
        String problem = ServingRequest.stopProblem(out, OpenAiRequest.MAX_STOP);
        if (problem != null) {
            throw OpenAiException.invalid("stop", "stop " + problem);
        }
        return out;
    }

    /** include_usage of stream_options, or null when absent. */
    private Boolean streamOptions(JsonToken t) {
        if (t == JsonToken.VALUE_NULL) {
            return null;
        }
        if (t != JsonToken.START_OBJECT) {
            throw OpenAiException.invalid("stream_options", "stream_options must be an object, got " + describe(t));
        }
        Boolean include = null;
        while (p.nextToken() == JsonToken.PROPERTY_NAME) {
            String key = p.currentName();
            JsonToken v = p.nextToken();
            if (key.equals("include_usage")) {
                include = bool("stream_options.include_usage", v);
            } else {
                skip(v);
            }
        }
        return include;
    }

    /** Whether response_format asks for plain text (absent, null or {"type": "text"}). */
    private boolean textFormat(JsonToken t) {
        if (t == JsonToken.VALUE_NULL) {
            return true;
        }
        if (t != JsonToken.START_OBJECT) {
            skip(t);
            return false;
        }
        String type = null;
        while (p.nextToken() == JsonToken.PROPERTY_NAME) {
            String key = p.currentName();
            JsonToken v = p.nextToken();
            if (key.equals("type") && v == JsonToken.VALUE_STRING) {
                type = p.getString();
            } else {
                skip(v);
            }
        }
        return "text".equals(type);
    }

    /** Whether the value starting at {@code t} is the "not used" value of an unsupported parameter. */
    private boolean neutral(JsonToken t, Object neutral) {
        boolean result = switch (neutral) {
            case Integer i -> t.isNumeric() && p.getDoubleValue() == i;
            case Boolean b -> (t == JsonToken.VALUE_TRUE || t == JsonToken.VALUE_FALSE) && (t == JsonToken.VALUE_TRUE) == b;
            case AnyBoolean a -> t == JsonToken.VALUE_TRUE || t == JsonToken.VALUE_FALSE;
            case String s -> t == JsonToken.VALUE_STRING && p.getString().equals(s);
            case Map<?, ?> m -> t == JsonToken.START_OBJECT && emptyContainer();
            case List<?> l -> t == JsonToken.START_ARRAY && emptyContainer();
            default -> false;
        };
        if (!result && p.currentToken() != null && p.currentToken().isStructStart()) {
            p.skipChildren();
        }
        return result;
    }

    /** At a START_OBJECT/START_ARRAY: whether it is empty; either way the parser ends at its END token. */
    private boolean emptyContainer() {
        JsonToken next = p.nextToken();
        if (next == JsonToken.END_OBJECT || next == JsonToken.END_ARRAY) {
            return true;
        }
        // Not empty: skip the rest, counting the container we are inside.
        int depth = 1;
        JsonToken tok = next;
        while (true) {
            if (tok.isStructStart()) {
                depth++;
            } else if (tok.isStructEnd()) {
                depth--;
                if (depth == 0) {
                    break;
                }
            }
            tok = p.nextToken();
        }
        return false;
    }
}
