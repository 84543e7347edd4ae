package io.moemesh.gateway.http;

import io.moemesh.gateway.serving.GenerationService;
import io.moemesh.gateway.serving.ServingRequest;
import io.moemesh.model.MoeModel;
import io.moemesh.model.chat.ChatTemplate;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.SamplingParams;
import jakarta.servlet.http.HttpServletRequest;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.servlet.mvc.method.annotation.SseEmitter;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The OpenAI-compatible HTTP API: {@code POST /v1/completions}, {@code POST /v1/chat/completions},
 * {@code GET /v1/models}. Streaming answers are server-sent events ending with {@code data: [DONE]}.
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
    private final String modelName;

    public OpenAiController(MoeModel model, java.util.Optional<ChatTemplate> chat, GenerationService service,
                            JsonMapper json) {
        this.model = model;
        this.chat = chat.orElseGet(() -> ChatTemplate.of(DEFAULT_CHAT_TEMPLATE, Map.of()));
        this.service = service;
        this.json = json;
        this.modelName = model.directory().getFileName().toString();
    }

    @GetMapping("/v1/models")
    public Map<String, Object> models() {
        return Map.of("object", "list", "data", List.of(Map.of("id", modelName, "object", "model",
                "created", 0, "owned_by", "moemesh", "max_model_len", model.config().maxPositionEmbeddings())));
    }

    @PostMapping(value = "/v1/completions", consumes = MediaType.APPLICATION_JSON_VALUE)
    public Object completions(@RequestBody JsonNode body, HttpServletRequest http) {
        return run(OpenAiRequest.parse(body, false), false, http);
    }

    @PostMapping(value = "/v1/chat/completions", consumes = MediaType.APPLICATION_JSON_VALUE)
    public Object chatCompletions(@RequestBody JsonNode body, HttpServletRequest http) {
        return run(OpenAiRequest.parse(body, true), true, http);
    }

    private Object run(OpenAiRequest r, boolean isChat, HttpServletRequest http) {
        if (!r.model().equals(modelName)) {
            throw new OpenAiException(404, "invalid_request_error", "model_not_found", "model",
                    "The model `" + r.model() + "` does not exist; this gateway serves `" + modelName + "`");
        }
        int[] ids = isChat ? model.withBos(model.tokenizer().encode(chat.render(r.messages(), true)))
                : r.promptIds() != null ? model.withBos(r.promptIds()) : model.encodePrompt(r.prompt());
        int context = model.config().maxPositionEmbeddings();
        if (ids.length >= context) {
            throw new OpenAiException(400, "invalid_request_error", "context_length_exceeded", "messages",
                    "This model's maximum context length is " + context + " tokens; the prompt has " + ids.length);
        }
        int room = context - ids.length;
        int maxTokens = r.maxTokens() < 0 ? (isChat ? room : Math.min(16, room)) : Math.min(r.maxTokens(), room);
        SamplingParams params = new SamplingParams(r.temperature(), r.topP() == 0 ? 1e-9 : r.topP(),
                Math.max(0, r.topK()), r.seed() == null ? OptionalLong.empty() : OptionalLong.of(r.seed()), maxTokens,
                r.ignoreEos());
        String requestId = RequestIds.current(http);
        GenerationRequest g = new GenerationRequest(ids, params, false, r.logprobs());
        ServingRequest serving = new ServingRequest(requestId, Tenant.of(http), g, r.stop());
        OpenAiChunks chunks = new OpenAiChunks(isChat, (isChat ? "chatcmpl-" : "cmpl-") + UUID.randomUUID(), modelName,
                model.tokenizer());
        if (!r.stream()) {
            CollectingSink sink = new CollectingSink(chunks, r.logprobs() >= 0);
            service.submit(serving, sink);
            CompletableFuture<ResponseEntity<Map<String, Object>>> f = sink.response;
            return f;
        }
        SseEmitter emitter = new SseEmitter(0L);
        SseSink sink = new SseSink(emitter, chunks, json, r.includeUsage(), r.logprobs() >= 0);
        if (isChat) {
            sink.send(chunks.chunk("", null, null, true));
        }
        sink.attach(service.submit(serving, sink));
        return emitter;
    }
}
