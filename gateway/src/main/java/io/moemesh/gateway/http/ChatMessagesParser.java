package io.moemesh.gateway.http;

import io.moemesh.gateway.serving.PromptLimits;
import io.moemesh.model.chat.ChatMessage;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import tools.jackson.core.JsonParser;
import tools.jackson.core.JsonToken;

/**
 * The chat parts of a request body, read off {@link OpenAiRequestParser}'s token stream: {@code messages} (refused
 * as soon as their count or content bytes pass the limits, before the rest is read) and
 * {@code chat_template_kwargs} (bounded in values, as it is the one field read into a tree). Text that becomes
 * part of the prompt must be Unicode ({@link #text}).
 */
final class ChatMessagesParser {
    private static final Set<String> ROLES = Set.of("system", "user", "assistant", "developer");
    /**
     * Variables the request sets elsewhere, or refuses elsewhere: the template must not see them differ from what
     * the request says (tools given this way would be rendered while tool calls are not parsed).
     */
    private static final Set<String> RESERVED_VARIABLES = Set.of("messages", "add_generation_prompt", "tools",
            "documents");
    /**
     * Values (scalars and containers) chat_template_kwargs may hold: template flags are a handful, and a tree
     * costs tens of bytes per token of input, which a 4 MB body of {@code [[],[],...]} would turn into 100 MB.
     */
    static final int MAX_TEMPLATE_VALUES = 1024;

    private final JsonParser p;
    private final PromptLimits limits;
    private int templateValues;

    ChatMessagesParser(JsonParser p, PromptLimits limits) {
        this.p = p;
        this.limits = limits;
    }

    List<ChatMessage> messages(JsonToken t) {
        if (t != JsonToken.START_ARRAY) {
            throw OpenAiException.invalid("messages", "messages must be a non-empty array, got "
                    + OpenAiJson.describe(p, t));
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
                throw OpenAiException.invalid(at, at + " must be an object with role and content, got "
                        + OpenAiJson.describe(p, m));
            }
            String role = null;
            String content = null;
            // As for the request's own fields, a repeated key's last value decides.
            List<String> refused = new ArrayList<>();
            while (p.nextToken() == JsonToken.PROPERTY_NAME) {
                String key = p.currentName();
                JsonToken v = p.nextToken();
                switch (key) {
                    case "role" -> role = OpenAiJson.string(p, at + ".role", v);
                    case "content" -> content = content(at + ".content", v);
                    default -> {
                        Object neutral = OpenAiFields.MESSAGE_UNSUPPORTED.get(key);
                        if (neutral == null) {
                            throw OpenAiException.invalid(at + "." + key, OpenAiFields.unrecognized(
                                    List.of(at + "." + key)) + " (a message has role and content)");
                        }
                        refused.remove(at + "." + key);
                        if (!OpenAiFields.neutral(p, v, neutral)) {
                            refused.add(at + "." + key);
                        }
                    }
                }
            }
            if (!refused.isEmpty()) {
                throw OpenAiException.invalid(refused.getFirst(), "unsupported message field(s): "
                        + String.join(", ", refused) + " (the chat template is given only role and content; tool "
                        + "calls are not supported)");
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

    /**
     * A message's content: a string, or text parts ({"type": "text", "text": "..."}) joined with newlines, as vLLM
     * joins them (so the same request gives the same prompt on both).
     */
    private String content(String at, JsonToken t) {
        if (t == JsonToken.VALUE_STRING) {
            return text(at, p.getString());
        }
        if (t != JsonToken.START_ARRAY) {
            throw OpenAiException.invalid(at, at + " must be a string or an array of text parts, got "
                    + OpenAiJson.describe(p, t));
        }
        StringBuilder sb = new StringBuilder();
        int j = 0;
        for (JsonToken part = p.nextToken(); part != JsonToken.END_ARRAY; part = p.nextToken(), j++) {
            String pat = at + "[" + j + "]";
            if (part != JsonToken.START_OBJECT) {
                throw OpenAiException.invalid(pat, pat + " must be an object {\"type\": \"text\", \"text\": ...}, got "
                        + OpenAiJson.describe(p, part));
            }
            String type = null;
            String text = null;
            while (p.nextToken() == JsonToken.PROPERTY_NAME) {
                String key = p.currentName();
                JsonToken v = p.nextToken();
                switch (key) {
                    case "type" -> type = OpenAiJson.string(p, pat + ".type", v);
                    case "text" -> text = text(pat + ".text", OpenAiJson.string(p, pat + ".text", v));
                    // A part's other keys (cache_control, an image's detail, ...) ask for something not done here:
                    // refused like any unknown field, never dropped.
                    default -> throw OpenAiException.invalid(pat + "." + key, OpenAiFields.unrecognized(
                            List.of(pat + "." + key)) + " (a text part has type and text)");
                }
            }
            if (!"text".equals(type) || text == null) {
                throw OpenAiException.invalid(pat, "only text content parts are supported: " + pat
                        + " must be {\"type\": \"text\", \"text\": a string}");
            }
            if (j > 0) {
                sb.append('\n');
            }
            sb.append(text);
            if (sb.length() > limits.maxPromptBytes()) {
                limits.checkChatBytes("messages", PromptLimits.utf8Length(sb));
            }
        }
        return sb.toString();
    }

    /**
     * {@code s}, a string read from the body, when it is Unicode text; refused naming {@code field} when it holds
     * a lone surrogate. JSON can spell one ({@code "\\ud83d"} without its low half), Jackson gives it as it is,
     * and UTF-8 cannot encode it (Java's encoder writes '?'; HF tokenizers, and the tokenizer here, refuse such
     * text): refused while the field is known, so the 400 names it. (gRPC needs no such check: a protobuf string
     * must be valid UTF-8 already.)
     */
    static String text(String field, String s) {
        if (s == null) {
            return null;
        }
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                throw OpenAiException.invalid(field, String.format("%s is not valid Unicode: it has a lone surrogate "
                        + "\\u%04x at character %d (a \\ud800-\\udfff escape must be a high one followed by a low "
                        + "one), which no UTF-8 text can hold", field, (int) c, i));
            }
        }
        return s;
    }

    /** chat_template_kwargs: variables for the chat template, as plain Java values (maps, lists, scalars). */
    Map<String, Object> templateVariables(JsonToken t) {
        String name = "chat_template_kwargs";
        if (t == JsonToken.VALUE_NULL) {
            return Map.of();
        }
        if (t != JsonToken.START_OBJECT) {
            throw OpenAiException.invalid(name, name + " must be an object of template variables, got "
                    + OpenAiJson.describe(p, t));
        }
        // The root object is not one of the values: a flat object holds MAX_TEMPLATE_VALUES variables
        // (docs/gateway-api.md).
        templateValues = -1;
        @SuppressWarnings("unchecked")
        Map<String, Object> vars = (Map<String, Object>) value(name, t);
        for (String key : vars.keySet()) {
            if (RESERVED_VARIABLES.contains(key)) {
                throw OpenAiException.invalid(name, name + "." + key + " cannot be set: "
                        + (key.equals("add_generation_prompt") ? "use the request's add_generation_prompt"
                        : key.equals("messages") ? "the template gets the request's messages"
                        : key + " are not supported"));
            }
        }
        return vars;
    }

    private Object value(String name, JsonToken t) {
        if (++templateValues > MAX_TEMPLATE_VALUES) {
            throw OpenAiException.invalid(name, "chat_template_kwargs holds more than " + MAX_TEMPLATE_VALUES
                    + " values, the limit of this gateway");
        }
        return switch (t) {
            case START_OBJECT -> {
                Map<String, Object> map = new LinkedHashMap<>();
                while (p.nextToken() == JsonToken.PROPERTY_NAME) {
                    String key = p.currentName();
                    map.put(key, value(name, p.nextToken()));
                }
                yield map;
            }
            case START_ARRAY -> {
                List<Object> list = new ArrayList<>();
                for (JsonToken e = p.nextToken(); e != JsonToken.END_ARRAY; e = p.nextToken()) {
                    list.add(value(name, e));
                }
                yield list;
            }
            case VALUE_STRING -> text(name, p.getString());
            case VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT -> p.getNumberValue();
            case VALUE_TRUE -> true;
            case VALUE_FALSE -> false;
            default -> null;
        };
    }
}
