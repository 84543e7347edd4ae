package io.moemesh.gateway.http;

import io.moemesh.gateway.config.GatewayProperties;
import io.moemesh.gateway.serving.GenerationService;
import io.moemesh.gateway.serving.PromptLimits;
import io.moemesh.gateway.serving.PromptTooLongException;
import io.moemesh.gateway.serving.ServingRequest;
import io.moemesh.model.MoeModel;
import io.moemesh.model.chat.ChatTemplate;
import io.moemesh.model.chat.ChatTemplateException;
import io.moemesh.model.chat.RenderedChatTooLongException;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.SamplingParams;
import jakarta.servlet.http.HttpServletRequest;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.Set;
import java.util.UUID;
import org.springframework.http.InvalidMediaTypeException;
import org.springframework.http.MediaType;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.context.request.async.DeferredResult;
import tools.jackson.databind.json.JsonMapper;

/**
 * The OpenAI-compatible HTTP API: {@code POST /v1/completions}, {@code POST /v1/chat/completions},
 * {@code GET /v1/models}, {@code GET /v1/models/{id}}. Streaming answers are server-sent events ending with
 * {@code data: [DONE]}, committed only once the first chunk is ready, so errors before it keep their HTTP status.
 * Answers are asynchronous ({@link DeferredResult} without a timeout): the request thread is free while the engine
 * generates.
 */
@RestController
public class OpenAiController {
    /** Used when the model ships no chat template: ChatML (documented in docs/gateway-api.md). */
    static final String DEFAULT_CHAT_TEMPLATE = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
            + "{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    /**
     * Where a turn of {@link #DEFAULT_CHAT_TEMPLATE} ends. A model whose EOS is not this (a base model, the bundled tiny
     * ones) would write it as text and go on into a turn of its own ({@code <|im_start|>user...}) to the context's end:
     * a chat the fallback renders stops at it, as a stop string and, when the vocabulary has it, as a token.
     */
    static final String FALLBACK_END_OF_TURN = "<|im_end|>";

    private final MoeModel model;
    private final ChatTemplate chat;
    private final GenerationService service;
    private final JsonMapper json;
    private final PromptLimits limits;
    private final String modelName;
    private final long maxStreamBacklogBytes;
    /** The model has no chat template: chats are rendered with {@link #DEFAULT_CHAT_TEMPLATE}. */
    private final boolean fallbackChat;
    /** {@link #FALLBACK_END_OF_TURN}'s id when the vocabulary has it (a special token is not in the decoded text). */
    private final Set<Integer> fallbackStopIds;

    public OpenAiController(MoeModel model, java.util.Optional<ChatTemplate> chat, GenerationService service,
                            JsonMapper json, PromptLimits limits, GatewayProperties properties) {
        this.maxStreamBacklogBytes = properties.admission().maxStreamBacklogBytes();
        this.model = model;
        this.chat = chat.orElseGet(() -> ChatTemplate.of(DEFAULT_CHAT_TEMPLATE, Map.of()));
        this.fallbackChat = chat.isEmpty();
        var endOfTurn = model.tokenizer().tokenId(FALLBACK_END_OF_TURN);
        this.fallbackStopIds = endOfTurn.isPresent() ? Set.of(endOfTurn.getAsInt()) : Set.of();
        this.service = service;
        this.json = json;
        this.limits = limits;
        this.modelName = model.directory().getFileName().toString();
    }

    @GetMapping("/v1/models")
    public Map<String, Object> models() {
        return Map.of("object", "list", "data", List.of(modelObject()));
    }

    /**
     * One model (the clients' models.retrieve): the served one, else 404 model_not_found as OpenAI answers. The id is
     * the rest of the path, decoded: {@code org/name} sent as two segments or as {@code org%2Fname} (the openai npm
     * client) alike ({@link ModelIdPath}).
     */
    @GetMapping("/v1/models/{*id}")
    public Map<String, Object> model(@PathVariable("id") String rest) {
        // {*id} captures from the '/' after /v1/models; GET /v1/models itself is the list (the more specific match).
        String id = rest.startsWith("/") ? rest.substring(1) : rest;
        if (!id.equals(modelName)) {
            throw unknownModel(id);
        }
        return modelObject();
    }

    private Map<String, Object> modelObject() {
        return Map.of("id", modelName, "object", "model", "created", 0, "owned_by", "moemesh",
                "max_model_len", limits.context());
    }

    private OpenAiException unknownModel(String asked) {
        // The name is echoed cut short: it may be megabytes long.
        String shown = asked.length() > 256 ? asked.substring(0, 256) + "…" : asked;
        return new OpenAiException(404, "invalid_request_error", "model_not_found", "model",
                "The model `" + shown + "` does not exist; this gateway serves `" + modelName + "`");
    }

    /**
     * The body, received whole by PublicApiFilter (its limits held), is parsed by the request parser as a stream (see
     * {@link OpenAiRequestParser} for why). Its tenant's rate is charged before anything is parsed or tokenized: a
     * tenant past it is refused (429). PublicApiFilter charged it already, once authenticated and before its body (so a
     * body that never completes is charged too, and a tenant past its rate never holds an intake permit); one that
     * reached here without passing the filter is charged here.
     */
    @PostMapping(value = "/v1/completions", consumes = MediaType.APPLICATION_JSON_VALUE)
    public Object completions(HttpServletRequest http) throws IOException {
        chargeRate(http);
        return run(OpenAiRequest.parse(http.getInputStream(), false, json, limits), false, http);
    }

    @PostMapping(value = "/v1/chat/completions", consumes = MediaType.APPLICATION_JSON_VALUE)
    public Object chatCompletions(HttpServletRequest http) throws IOException {
        chargeRate(http);
        return run(OpenAiRequest.parse(http.getInputStream(), true, json, limits), true, http);
    }

    private void chargeRate(HttpServletRequest http) {
        if (http.getAttribute(Tenant.RATE_CHARGED_ATTRIBUTE) == null) {
            service.chargeRate(Tenant.of(http));
        }
    }

    /**
     * The prompt's ids, refused as early as its size allows (see {@link PromptLimits}). BOS: the model's rule
     * ({@link MoeModel#withBos}: prepended when the tokenizer adds one and it is not already first) for text, token
     * ids and a rendered chat alike, unless add_special_tokens is false.
     */
    private int[] promptIds(OpenAiRequest r, boolean isChat) {
        int[] ids;
        String field = isChat ? "messages" : "prompt";
        if (isChat) {
            String rendered = renderChat(r);
            limits.checkText(field, rendered);
            ids = model.tokenizer().encode(rendered);
        } else if (r.promptIds() != null) {
            int vocab = model.config().vocabSize();
            for (int i = 0; i < r.promptIds().length; i++) {
                if (r.promptIds()[i] >= vocab) {
                    throw OpenAiException.invalid("prompt", "prompt[" + i + "] = " + r.promptIds()[i]
                            + " is not a token id of this model (vocabulary size " + vocab + ")");
                }
            }
            ids = r.promptIds();
        } else {
            limits.checkText(field, r.prompt());
            ids = model.tokenizer().encode(r.prompt());
        }
        if (r.addSpecialTokens()) {
            ids = model.withBos(ids);
        }
        if (ids.length == 0) {
            // A model without BOS (or add_special_tokens: false) and a text that encodes to nothing: there is no
            // position to generate from.
            throw OpenAiException.invalid(field, field + " encodes to no tokens"
                    + (r.addSpecialTokens() ? " (this model adds no BOS)" : " (add_special_tokens is false)")
                    + ": at least one is needed to generate from");
        }
        limits.checkTokens(field, ids.length);
        return ids;
    }

    /** The conversation through the chat template, as transformers' apply_chat_template renders it. */
    private String renderChat(OpenAiRequest r) {
        OpenAiRequest.ChatOptions o = r.chatOptions();
        String rendered;
        try {
            // at most the characters a prompt may have: a template repeating the chat by a count from the request
            // fails before it builds more
            rendered = chat.render(r.messages(), o.addGenerationPrompt(), o.variables(), limits.maxPromptBytes());
        } catch (ChatTemplateException e) {
            // The template's raise_exception (roles that do not alternate, a system message out of place, ...) or
            // Python failing on the values (a TypeError on a chat_template_kwargs value): the caller's mistake.
            throw OpenAiException.invalid("messages", e.getMessage());
        } catch (RenderedChatTooLongException e) {
            throw new PromptTooLongException("messages", "The chat template's output for messages would be longer "
                    + "than " + e.limit() + " characters" + (e.limit() >= limits.maxPromptBytes() ? ", more than "
                    + limits.maxPromptTokens() + " prompt tokens can hold (at most " + limits.maxPromptBytes()
                    + " bytes)" : ", the most a chat template may output"));
        }
        return o.continueFinalMessage() ? cutAfterFinalMessage(rendered, r.messages().getLast().content()) : rendered;
    }

    /**
     * continue_final_message: the rendered chat up to the end of the final message's text, so that what closes
     * the turn (an end-of-turn token, a newline) is not there and the model continues the message. As
     * transformers' apply_chat_template does it, so both give the same prompt: cut after the last occurrence of
     * the stripped text, with the message's trailing whitespace when the template kept the message as it is.
     */
    static String cutAfterFinalMessage(String rendered, String finalMessage) {
        String stripped = pythonStrip(finalMessage, true);
        int at = rendered.lastIndexOf(stripped);
        if (at < 0) {
            throw OpenAiException.invalid("continue_final_message", "continue_final_message is set but the final "
                    + "message does not appear in the chat the template rendered (the template changes it)");
        }
        String lead = pythonStrip(finalMessage, false);
        boolean asIs = lead.length() == finalMessage.length() && rendered.startsWith(finalMessage, at);
        return rendered.substring(0, at + (asIs ? lead.length() : stripped.length()));
    }

    /**
     * Python's {@code str.strip()} ({@code lstrip()} without {@code right}), which transformers cuts with: whitespace
     * is {@code str.isspace}, which also counts U+00A0, U+2007, U+202F (Java's strip does not) and U+0085. Java's
     * isWhitespace and isSpaceChar together, plus U+0085, are exactly that set.
     */
    static String pythonStrip(String s, boolean right) {
        int start = 0;
        int end = s.length();
        while (start < end && isPythonSpace(s.codePointAt(start))) {
            start += Character.charCount(s.codePointAt(start));
        }
        while (right && end > start && isPythonSpace(s.codePointBefore(end))) {
            end -= Character.charCount(s.codePointBefore(end));
        }
        return s.substring(start, end);
    }

    private static boolean isPythonSpace(int c) {
        return Character.isWhitespace(c) || Character.isSpaceChar(c) || c == 0x85;
    }

    /** The caller's stop strings, and the fallback's end of turn for a chat it renders (once, whoever named it). */
    static List<String> stops(List<String> asked, boolean fallbackChat) {
        if (!fallbackChat || asked.contains(FALLBACK_END_OF_TURN)) {
            return asked;
        }
        List<String> stops = new java.util.ArrayList<>(asked);
        stops.add(FALLBACK_END_OF_TURN);
        return stops;
    }

    /**
     * A non-streamed answer is JSON: an Accept header that rules it out is 406 now, before the request is admitted
     * and generated (Spring would only find out when writing the result, after the tokens were spent and counted).
     * A stream is always text/event-stream (SseEmitter sets it), as its errors are always JSON.
     */
    private static void checkAcceptsJson(HttpServletRequest http) {
        String accept = http.getHeader("Accept");
        if (accept == null || accept.isBlank()) {
            return;
        }
        List<MediaType> types;
        try {
            types = MediaType.parseMediaTypes(accept);
        } catch (InvalidMediaTypeException e) {
            throw new OpenAiException(406, "invalid_request_error", null, null, "Accept: " + e.getMessage());
        }
        for (MediaType t : types) {
            if (t.getQualityValue() > 0 && t.isCompatibleWith(MediaType.APPLICATION_JSON)) {
                return;
            }
        }
        throw new OpenAiException(406, "invalid_request_error", null, null,
                "this response is application/json, which the Accept header does not allow");
    }

    private Object run(OpenAiRequest r, boolean isChat, HttpServletRequest http) {
        if (!r.stream()) {
            checkAcceptsJson(http);
        }
        if (!r.model().equals(modelName)) {
            throw unknownModel(r.model());
        }
        // The value asked for, not the one clamped to the room the prompt leaves: a long prompt must not let a
        // max_tokens above the cap through.
        String tooMany = r.maxTokens() < 0 ? null : limits.maxTokensProblem(r.maxTokens());
        if (tooMany != null) {
            throw OpenAiException.invalid(r.maxTokensParam(), r.maxTokensParam() + " " + tooMany);
        }
        int[] ids = promptIds(r, isChat);
        int room = limits.context() - ids.length;
        // Unset: chat runs to the end of the context, a completion to OpenAI's default of 16, both within the
        // gateway's cap (a length finish, not a refusal); an explicit value above the cap was refused above, one
        // beyond the context's room is refused here.
        int unset = limits.defaultMaxTokens(ids.length);
        if (r.maxTokens() > room) {
            // OpenAI's and vLLM's answer to a completion budget the context cannot hold: clamping it would give
            // fewer tokens than asked for with finish reason length, as if they had been generated.
            String in = isChat ? "messages" : "prompt";
            throw new OpenAiException(400, "invalid_request_error", "context_length_exceeded", r.maxTokensParam(),
                    "This model's maximum context length is " + limits.context() + " tokens. However, you requested "
                            + ((long) ids.length + r.maxTokens()) + " tokens (" + ids.length + " in the " + in + ", "
                            + r.maxTokens() + " in the completion). Please reduce the length of the " + in + " or "
                            + r.maxTokensParam() + ".");
        }
        int maxTokens = r.maxTokens() < 0 ? (isChat ? unset : Math.min(16, unset)) : r.maxTokens();
        SamplingParams params = new SamplingParams(r.temperature(), r.topP() == 0 ? 1e-9 : r.topP(),
                Math.max(0, r.topK()), r.seed() == null ? OptionalLong.empty() : OptionalLong.of(r.seed()), maxTokens,
                r.ignoreEos());
        String requestId = RequestIds.current(http);
        GenerationRequest g = new GenerationRequest(ids, params, false, r.logprobs());
        boolean fallback = isChat && fallbackChat;
        ServingRequest serving = new ServingRequest(requestId, Tenant.of(http), g, stops(r.stop(), fallback),
                RequestIds.arrivalNanos(http), fallback ? fallbackStopIds : Set.of());
        OpenAiChunks chunks = new OpenAiChunks(isChat, (isChat ? "chatcmpl-" : "cmpl-") + UUID.randomUUID(), modelName,
                model.tokenizer(), r.stream() && r.includeUsage());
        if (!r.stream()) {
            CollectingSink sink = new CollectingSink(chunks, r.logprobs() >= 0, requestId);
            GenerationService.Handle handle = service.submit(serving, sink);
            // Only a container error ends it early (Tomcat reports none for a client that merely disconnects
            // while nothing is written: see CollectingSink for what bounds such a request).
            sink.response.onError(e -> handle.cancel());
            return sink.response;
        }
        SseSink sink = new SseSink(chunks, json, r.includeUsage(), r.logprobs() >= 0, isChat, requestId,
                maxStreamBacklogBytes);
        sink.attach(service.submit(serving, sink));
        return sink.response;
    }
}
