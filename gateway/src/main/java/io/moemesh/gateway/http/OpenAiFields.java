package io.moemesh.gateway.http;

import java.util.List;
import java.util.Map;
import java.util.Set;
import tools.jackson.core.JsonParser;
import tools.jackson.core.JsonToken;

/**
 * What the HTTP API does with a request field it does not honour. Every field is honoured or refused with 400
 * naming it, never silently dropped (docs/gateway-api.md, HTTP API): a client relying on a penalty, a guided
 * decoding or a misspelt parameter would otherwise get an answer that is not the one it asked for, without a word.
 * <ul>
 * <li>{@link #UNSUPPORTED}: parameters of OpenAI and vLLM that MoE Mesh does not implement, refused unless null or
 * their neutral value (the value that asks for nothing): clients and frameworks send defaults explicitly.</li>
 * <li>{@link #IGNORED}: accepted with any value and not used, because they cannot change what is generated or
 * returned (an end-user id, metadata, cache and routing hints).</li>
 * <li>Anything else is refused as OpenAI refuses it: "Unrecognized request argument supplied".</li>
 * </ul>
 */
final class OpenAiFields {
    /** Neutral values that are not a JSON literal. */
    enum Neutral {
        /** Either boolean (parallel_tool_calls: it means nothing without tools, and true is OpenAI's default). */
        ANY_BOOLEAN,
        /** Only null: every other value asks for something (a schema, a budget, an id list, ...). */
        NULL_ONLY
    }

    /** Unsupported parameter → the value that means "not used" (null means it too). */
    static final Map<String, Object> UNSUPPORTED = Map.ofEntries(
            // OpenAI's
            Map.entry("frequency_penalty", 0), Map.entry("presence_penalty", 0), Map.entry("n", 1),
            Map.entry("best_of", 1), Map.entry("echo", false), Map.entry("logit_bias", Map.of()),
            Map.entry("tools", List.of()), Map.entry("tool_choice", "none"), Map.entry("functions", List.of()),
            Map.entry("function_call", "none"), Map.entry("suffix", ""), Map.entry("audio", Map.of()),
            Map.entry("prediction", Map.of()), Map.entry("parallel_tool_calls", Neutral.ANY_BOOLEAN),
            // verbosity: OpenAI's default, "medium", asks for nothing; modalities: text out is all there is.
            Map.entry("reasoning_effort", Neutral.NULL_ONLY), Map.entry("verbosity", "medium"),
            Map.entry("modalities", List.of("text")), Map.entry("web_search_options", Neutral.NULL_ONLY),
            // store: true promises a completion kept for later retrieval, which nothing keeps.
            Map.entry("store", false),
            // vLLM's sampling and output extensions
            Map.entry("repetition_penalty", 1), Map.entry("min_tokens", 0), Map.entry("min_p", 0),
            Map.entry("length_penalty", 1), Map.entry("use_beam_search", false), Map.entry("early_stopping", false),
            Map.entry("stop_token_ids", List.of()), Map.entry("bad_words", List.of()),
            Map.entry("allowed_token_ids", Neutral.NULL_ONLY), Map.entry("logits_processors", Neutral.NULL_ONLY),
            Map.entry("include_stop_str_in_output", false), Map.entry("skip_special_tokens", true),
            Map.entry("spaces_between_special_tokens", true), Map.entry("prompt_logprobs", Neutral.NULL_ONLY),
            Map.entry("return_tokens_as_token_ids", false), Map.entry("return_token_ids", false),
            Map.entry("truncate_prompt_tokens", Neutral.NULL_ONLY), Map.entry("priority", 0),
            Map.entry("guided_json", Neutral.NULL_ONLY), Map.entry("guided_regex", Neutral.NULL_ONLY),
            Map.entry("guided_choice", Neutral.NULL_ONLY), Map.entry("guided_grammar", Neutral.NULL_ONLY),
            Map.entry("guided_decoding_backend", Neutral.NULL_ONLY),
            Map.entry("guided_whitespace_pattern", Neutral.NULL_ONLY),
            Map.entry("structured_outputs", Neutral.NULL_ONLY),
            // vLLM's prompt and serving extensions
            Map.entry("chat_template", Neutral.NULL_ONLY), Map.entry("documents", Neutral.NULL_ONLY),
            Map.entry("mm_processor_kwargs", Neutral.NULL_ONLY), Map.entry("prompt_embeds", Neutral.NULL_ONLY),
            Map.entry("cache_salt", Neutral.NULL_ONLY), Map.entry("kv_transfer_params", Neutral.NULL_ONLY),
            Map.entry("vllm_xargs", Neutral.NULL_ONLY), Map.entry("request_id", Neutral.NULL_ONLY));

    /**
     * Accepted with any value, not used: none of them can change the tokens, the text or the shape of the answer.
     * {@code user} and {@code safety_identifier} identify the end user for abuse monitoring, {@code metadata} tags
     * a stored completion (nothing is stored: see store), {@code service_tier} and {@code prompt_cache_key} are
     * latency, price and cache-routing hints.
     */
    static final Set<String> IGNORED = Set.of("user", "safety_identifier", "metadata", "service_tier",
            "prompt_cache_key");

    /**
     * Fields of a chat message other than role and content → their neutral value. Clients send an assistant
     * message back as they received it ({@code refusal: null}, {@code tool_calls: null}, {@code annotations: []});
     * any other value would be lost, as the chat template is given only role and content.
     */
    static final Map<String, Object> MESSAGE_UNSUPPORTED = Map.of("name", Neutral.NULL_ONLY,
            "tool_calls", List.of(), "tool_call_id", Neutral.NULL_ONLY, "function_call", Neutral.NULL_ONLY,
            "refusal", Neutral.NULL_ONLY, "audio", Neutral.NULL_ONLY, "annotations", List.of(),
            "reasoning_content", Neutral.NULL_ONLY, "reasoning", Neutral.NULL_ONLY);

    private OpenAiFields() {
    }

    /** OpenAI's message for fields it does not know. */
    static String unrecognized(List<String> names) {
        return (names.size() == 1 ? "Unrecognized request argument supplied: " : "Unrecognized request arguments "
                + "supplied: ") + String.join(", ", names);
    }

    /**
     * Whether the value starting at {@code t} is null or {@code neutral}; either way the parser ends at its last
     * token.
     */
    static boolean neutral(JsonParser p, JsonToken t, Object neutral) {
        if (t == JsonToken.VALUE_NULL) {
            return true;
        }
        boolean result = switch (neutral) {
            case Integer i -> t.isNumeric() && p.getDoubleValue() == i;
            case Boolean b -> (t == JsonToken.VALUE_TRUE || t == JsonToken.VALUE_FALSE) && (t == JsonToken.VALUE_TRUE) == b;
            case Neutral n -> n == Neutral.ANY_BOOLEAN && (t == JsonToken.VALUE_TRUE || t == JsonToken.VALUE_FALSE);
            case String s -> t == JsonToken.VALUE_STRING && p.getString().equals(s);
            case Map<?, ?> m -> t == JsonToken.START_OBJECT && emptyContainer(p);
            case List<?> l -> t == JsonToken.START_ARRAY && (l.isEmpty() ? emptyContainer(p) : sameStrings(p, l));
            default -> false;
        };
        if (!result && p.currentToken() != null && p.currentToken().isStructStart()) {
            p.skipChildren();
        }
        return result;
    }

    /**
     * At a START_ARRAY: whether it holds exactly {@code expected}'s strings, in order; either way the parser ends at its
     * END_ARRAY.
     */
    private static boolean sameStrings(JsonParser p, List<?> expected) {
        boolean same = true;
        int i = 0;
        for (JsonToken tok = p.nextToken(); tok != JsonToken.END_ARRAY; tok = p.nextToken(), i++) {
            if (tok.isStructStart()) {
                p.skipChildren();
                same = false;
            } else if (tok != JsonToken.VALUE_STRING || i >= expected.size() || !p.getString().equals(expected.get(i))) {
                same = false;
            }
        }
        return same && i == expected.size();
    }

    /** At a START_OBJECT/START_ARRAY: whether it is empty; either way the parser ends at its END token. */
    private static boolean emptyContainer(JsonParser p) {
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
