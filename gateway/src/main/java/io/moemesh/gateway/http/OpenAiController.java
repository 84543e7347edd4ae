package io.moemesh.gateway.http;

import io.moemesh.gateway.config.GatewayProperties;
import io.moemesh.gateway.serving.GenerationService;
import io.moemesh.gateway.serving.PromptLimits;
import io.moemesh.gateway.serving.ServingRequest;
import io.moemesh.model.MoeModel;
import io.moemesh.model.chat.ChatTemplate;
import io.moemesh.model.chat.ChatTemplateException;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.SamplingParams;
import jakarta.servlet.http.HttpServletRequest;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.UUID;
import org.springframework.http.InvalidMediaTypeException;
import org.springframework.http.MediaType;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.context.request.async.DeferredResult;
import tools.jackson.databind.json.JsonMapper;

/**
 * The OpenAI-compatible HTTP API: {@code POST /v1/completions}, {@code POST /v1/chat/completions},
 * {@code GET /v1/models}. Streaming answers are server-sent events ending with {@code data: [DONE]}, committed
 * only once the first chunk is ready, so errors before it keep their HTTP status. Answers are asynchronous
 * ({@link DeferredResult} without a timeout): the request thread is free while the engine generates.
 */
@RestController
public class OpenAiController {
    /** Used when the model ships no chat template: ChatML (documented in README). */
    static final String DEFAULT_CHAT_TEMPLATE = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
            + "{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    private final MoeModel model;
    private final ChatTemplate chat;
    private final GenerationService service;
    private final JsonMapper json;
    private final PromptLimits limits;
    private final String modelName;
    private final long maxStreamBacklogBytes;

    public OpenAiController(MoeModel model, java.util.Optional<ChatTemplate> chat, GenerationService service,
                            JsonMapper json, PromptLimits limits, GatewayProperties properties) {
        this.maxStreamBacklogBytes = properties.admission().maxStreamBacklogBytes();
        this.model = model;
        this.chat = chat.orElseGet(() -> ChatTemplate.of(DEFAULT_CHAT_TEMPLATE, Map.of()));
        this.service = service;
        this.json = json;
        this.limits = limits;
        this.modelName = model.directory().getFileName().toString();
    }

    @GetMapping("/v1/models")
    public Map<String, Object> models() {
        return Map.of("object", "list", "data", List.of(Map.of("id", modelName, "object", "model",
                "created", 0, "owned_by", "moemesh", "max_model_len", limits.context())));
    }

    /** The body is read by the request parser itself, as a stream (see {@link OpenAiRequestParser} for why). */
    @PostMapping(value = "/v1/completions", consumes = MediaType.APPLICATION_JSON_VALUE)
    public Object completions(HttpServletRequest http) throws IOException {
        return run(OpenAiRequest.parse(http.getInputStream(), false, json, limits), false, http);
    }

    @PostMapping(value = "/v1/chat/completions", consumes = MediaType.APPLICATION_JSON_VALUE)
    public Object chatCompletions(HttpServletRequest http) throws IOException {
        return run(OpenAiRequest.parse(http.getInputStream(), true, json, limits), true, http);
    }

    /** The prompt's ids, BOS included, refused as early as its size allows (see {@link PromptLimits}). */
    private int[] promptIds(OpenAiRequest r, boolean isChat) {
        int[] ids;
        String field = isChat ? "messages" : "prompt";
        if (isChat) {
            String rendered;
            try {
                rendered = chat.render(r.messages(), true);
            } catch (ChatTemplateException e) {
                // The template's raise_exception (roles that do not alternate, a system message out of place, ...):
                // the conversation is the caller's mistake.
                throw OpenAiException.invalid(field, e.getMessage());
            }
            limits.checkText(field, rendered);
            ids = model.withBos(model.tokenizer().encode(rendered));
        } else if (r.promptIds() != null) {
            int vocab = model.config().vocabSize();
            for (int i = 0; i < r.promptIds().length; i++) {
                if (r.promptIds()[i] >= vocab) {
                    throw OpenAiException.invalid("prompt", "prompt[" + i + "] = " + r.promptIds()[i]
                            + " is not a token id of this model (vocabulary size " + vocab + ")");
                }
            }
            ids = model.withBos(r.promptIds());
        } else {
            limits.checkText(field, r.prompt());
            ids = model.encodePrompt(r.prompt());
        }
        limits.checkTokens(field, ids.length);
        return ids;
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
            // The name is echoed cut short: it may be megabytes long.
            String asked = r.model().length() > 256 ? r.model().substring(0, 256) + "…" : r.model();
            throw new OpenAiException(404, "invalid_request_error", "model_not_found", "model",
                    "The model `" + asked + "` does not exist; this gateway serves `" + modelName + "`");
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
        // gateway's cap (a length finish, not a refusal); an explicit value above the cap was refused above.
        int unset = limits.defaultMaxTokens(ids.length);
        int maxTokens = r.maxTokens() < 0 ? (isChat ? unset : Math.min(16, unset)) : Math.min(r.maxTokens(), room);
        SamplingParams params = new SamplingParams(r.temperature(), r.topP() == 0 ? 1e-9 : r.topP(),
                Math.max(0, r.topK()), r.seed() == null ? OptionalLong.empty() : OptionalLong.of(r.seed()), maxTokens,
                r.ignoreEos());
        String requestId = RequestIds.current(http);
        GenerationRequest g = new GenerationRequest(ids, params, false, r.logprobs());
        ServingRequest serving = new ServingRequest(requestId, Tenant.of(http), g, r.stop());
        OpenAiChunks chunks = new OpenAiChunks(isChat, (isChat ? "chatcmpl-" : "cmpl-") + UUID.randomUUID(), modelName,
                model.tokenizer());
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
