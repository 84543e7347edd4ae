package io.moemesh.gateway.http;

import io.moemesh.gateway.serving.PromptLimits;
import io.moemesh.gateway.serving.ServingRequest;
import io.moemesh.model.chat.ChatMessage;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import tools.jackson.core.JacksonException;
import tools.jackson.core.JsonParser;
import tools.jackson.core.JsonToken;
import tools.jackson.databind.json.JsonMapper;

/**
 * Reads an OpenAI request body token by token straight into an {@link OpenAiRequest}, never into a JSON tree: a
 * tree costs tens of bytes per token of input (a 4 MB body of {@code [[],[],...]} would be over 100 MB), while
 * here memory grows only with what is kept (the prompt, the messages, the ids), and a chat is refused as soon as
 * its message count or its content bytes pass the limits, before the rest of the body is read. A field it does
 * not honour is refused naming it ({@link OpenAiFields} says which are accepted unused), and its value is skipped
 * without being materialised. Duplicate keys: the last one wins, as in Python's json module.
 */
final class OpenAiRequestParser {
    private static final String PROMPT_SHAPE = "prompt must be a string, an array of one string, or a non-empty "
            + "array of token ids (batches of prompts are not supported: send one request per prompt)";

    private final JsonParser p;
    private final boolean chat;
    private final PromptLimits limits;
    private final ChatMessagesParser chatParser;
    private final List<String> refused = new ArrayList<>();
    private final List<String> unrecognized = new ArrayList<>();

    private OpenAiRequestParser(JsonParser p, boolean chat, PromptLimits limits) {
        this.p = p;
        this.chat = chat;
        this.limits = limits;
        this.chatParser = new ChatMessagesParser(p, limits);
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
        boolean addSpecialTokens = true;
        boolean addGenerationPrompt = true;
        boolean continueFinalMessage = false;
        Map<String, Object> templateVariables = Map.of();
        while (p.nextToken() == JsonToken.PROPERTY_NAME) {
            String name = p.currentName();
            JsonToken t = p.nextToken();
            switch (name) {
                case "model" -> model = string(name, t);
                // prompt on chat, messages on completions: the other endpoint's input, not read here.
                case "prompt" -> {
                    if (chat) {
                        unknown(name, t);
                    } else if (t == JsonToken.VALUE_STRING) {
                        prompt = ChatMessagesParser.text("prompt", p.getString());
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
                        messages = chatParser.messages(t);
                    } else {
                        unknown(name, t);
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
                case "add_special_tokens" -> addSpecialTokens = orElse(bool(name, t), true);
                case "add_generation_prompt", "continue_final_message", "chat_template_kwargs" -> {
                    if (!chat) {
                        unknown(name, t);
                    } else if (name.equals("add_generation_prompt")) {
                        addGenerationPrompt = orElse(bool(name, t), true);
                    } else if (name.equals("continue_final_message")) {
                        continueFinalMessage = orElse(bool(name, t), false);
                    } else {
                        templateVariables = chatParser.templateVariables(t);
                    }
                }
                // The last value of a repeated key decides, as for every other field: an earlier refusal goes.
                case "response_format" -> {
                    refused.remove(name);
                    if (!textFormat(t)) {
                        refused.add(name);
                    }
                }
                default -> {
                    Object neutral = OpenAiFields.UNSUPPORTED.get(name);
                    if (neutral != null) {
                        refused.remove(name);
                        if (!OpenAiFields.neutral(p, t, neutral)) {
                            refused.add(name);
                        }
                    } else if (OpenAiFields.IGNORED.contains(name)) {
                        skip(t);
                    } else {
                        unknown(name, t);
                    }
                }
            }
        }
        if (p.nextToken() != null) {
            throw OpenAiException.invalid(null, "the request body must hold one JSON object and nothing after it");
        }
        if (!unrecognized.isEmpty()) {
            throw OpenAiException.invalid(unrecognized.getFirst(), OpenAiFields.unrecognized(unrecognized));
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
        } else if (topLogprobs != null) {
            // Chat's way of asking for alternatives; on completions the number is logprobs itself.
            throw OpenAiException.invalid("top_logprobs", "top_logprobs is a chat completions parameter: on "
                    + "/v1/completions, logprobs: n (0 to 5) asks for the n most likely alternatives");
        } else {
            logprobs = orElse(completionLogprobs, -1);
        }
        if (continueFinalMessage && addGenerationPrompt) {
            throw OpenAiException.invalid("continue_final_message", "continue_final_message needs "
                    + "add_generation_prompt: false (the final message is continued, no new assistant turn is opened)");
        }
        // OpenAI deprecated max_tokens for max_completion_tokens, which wins when both are given. Honoured on
        // /v1/completions too: a client that moved to the new name must not silently get the default of 16.
        String maxParam = maxCompletionTokens != null ? "max_completion_tokens" : "max_tokens";
        int max = maxCompletionTokens != null ? maxCompletionTokens : orElse(maxTokens, -1);
        OpenAiRequest.ChatOptions chatOptions = chat ? new OpenAiRequest.ChatOptions(addGenerationPrompt,
                continueFinalMessage, templateVariables) : OpenAiRequest.ChatOptions.DEFAULT;
        return new OpenAiRequest(model, prompt, promptIds, messages, chatOptions, addSpecialTokens, max, maxParam, stop,
                temperature, topP, topK, seed, streaming, orElse(includeUsage, false), logprobs, ignoreEos);
    }

    private static <T> T orElse(T value, T dflt) {
        return value == null ? dflt : value;
    }

    private void skip(JsonToken t) {
        OpenAiJson.skip(p, t);
    }

    /** A field this endpoint does not know: refused once the body is read, its value skipped meanwhile. */
    private void unknown(String name, JsonToken t) {
        skip(t);
        if (!unrecognized.contains(name)) {
            unrecognized.add(name);
        }
    }

    private String describe(JsonToken t) {
        return OpenAiJson.describe(p, t);
    }

    private String string(String name, JsonToken t) {
        return OpenAiJson.string(p, name, t);
    }

    private Boolean bool(String name, JsonToken t) {
        return OpenAiJson.bool(p, name, t);
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
            String s = ChatMessagesParser.text("prompt", p.getString());
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

    private List<String> stop(JsonToken t) {
        String shape = "stop must be a string or an array of up to " + OpenAiRequest.MAX_STOP + " strings";
        List<String> out = new ArrayList<>();
        if (t == JsonToken.VALUE_NULL) {
            return out;
        }
        // Matched against the generated text: a lone surrogate could never match, nor be encoded to look for.
        if (t == JsonToken.VALUE_STRING) {
            out.add(ChatMessagesParser.text("stop", p.getString()));
        } else if (t == JsonToken.START_ARRAY) {
            for (JsonToken s = p.nextToken(); s != JsonToken.END_ARRAY; s = p.nextToken()) {
                if (s != JsonToken.VALUE_STRING || out.size() == OpenAiRequest.MAX_STOP) {
                    throw OpenAiException.invalid("stop", shape + ", got " + describe(s) + " at stop[" + out.size() + "]");
                }
                out.add(ChatMessagesParser.text("stop", p.getString()));
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
            switch (key) {
                case "include_usage" -> include = bool("stream_options.include_usage", v);
                // vLLM's usage in every chunk: false asks for nothing, true for chunks this gateway does not send.
                case "continuous_usage_stats" -> {
                    if (orElse(bool("stream_options.continuous_usage_stats", v), false)) {
                        throw OpenAiException.invalid("stream_options.continuous_usage_stats",
                                "unsupported parameter(s): stream_options.continuous_usage_stats (usage comes in one "
                                        + "chunk at the end: include_usage)");
                    }
                }
                // OpenAI's random padding of each chunk (a side-channel mitigation, on by default there): false
                // asks for what this gateway does; true for padding it never adds, so it is refused, not ignored.
                case "include_obfuscation" -> {
                    if (orElse(bool("stream_options.include_obfuscation", v), false)) {
                        throw OpenAiException.invalid("stream_options.include_obfuscation",
                                "unsupported parameter(s): stream_options.include_obfuscation (this gateway adds no "
                                        + "obfuscation padding to chunks: send false or leave it out)");
                    }
                }
                default -> unknown("stream_options." + key, v);
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
}
