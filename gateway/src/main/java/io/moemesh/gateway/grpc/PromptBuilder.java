package io.moemesh.gateway.grpc;

import io.grpc.Status;
import io.moemesh.gateway.serving.PromptLimits;
import io.moemesh.gateway.serving.PromptTooLongException;
import io.moemesh.gateway.serving.ServingRequest;
import io.moemesh.model.MoeModel;
import io.moemesh.model.chat.ChatMessage;
import io.moemesh.model.chat.ChatTemplate;
import io.moemesh.model.chat.RenderedChatTooLongException;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.proto.gateway.v1.ChatInput;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.TokenizeRequest;
import io.moemesh.service.grpc.StatusMapping;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * Turns a gateway.v1 request into token ids and sampling parameters, refusing what it cannot honour with the
 * status gateway.proto promises: INVALID_ARGUMENT naming the field for a bad value, NOT_FOUND for another model,
 * FAILED_PRECONDITION for chat input to a model without a chat template. uint32 fields arrive as Java ints,
 * negative from 2^31 on, so they are read unsigned before any range check. A chat the template refuses
 * (raise_exception, or Python failing on its values: ChatTemplateException, an IllegalArgumentException) is
 * INVALID_ARGUMENT, and so is a chat whose rendered text would pass the prompt's byte budget (PromptTooLongException,
 * naming chat); a template failing on its own (BrokenChatTemplateException) is the server's fault, INTERNAL, logged
 * by GatewayStatus.
 */
final class PromptBuilder {
    static final int MAX_REQUEST_ID_BYTES = 128;
    /** top_k values beyond this are refused (any value ≥ the vocabulary size already keeps every token). */
    static final long MAX_TOP_K = Integer.MAX_VALUE;

    private final MoeModel model;
    private final Optional<ChatTemplate> chat;
    private final PromptLimits limits;

    PromptBuilder(MoeModel model, Optional<ChatTemplate> chat, PromptLimits limits) {
        this.model = model;
        this.chat = chat;
        this.limits = limits;
    }

    int[] promptIds(GenerateRequest r) {
        String field;
        int[] ids = switch (r.getInputCase()) {
            case PROMPT -> {
                field = "prompt";
                limits.checkText(field, r.getPrompt());
                yield model.encodePrompt(r.getPrompt());
            }
            case PROMPT_IDS -> {
                field = "prompt_ids.token_ids";
                yield promptIds(r.getPromptIds().getTokenIdsList());
            }
            case CHAT -> {
                field = "chat";
                String rendered = renderChat(r.getChat());
                limits.checkText(field, rendered);
                yield model.withBos(model.tokenizer().encode(rendered));
            }
            case INPUT_NOT_SET -> throw new IllegalArgumentException(
                    "the request has no input: set prompt, prompt_ids or chat");
        };
        limits.checkTokens(field, ids.length);
        return ids;
    }

    private int[] promptIds(java.util.List<Integer> given) {
        if (given.isEmpty()) {
            throw new IllegalArgumentException("prompt_ids.token_ids is empty");
        }
        // BOS may be prepended: one more than the limit is certainly too long.
        limits.checkTokens("prompt_ids.token_ids", given.size());
        int vocab = model.config().vocabSize();
        int[] ids = new int[given.size()];
        for (int i = 0; i < ids.length; i++) {
            int id = given.get(i);
            if (id < 0 || id >= vocab) {
                throw new IllegalArgumentException("prompt_ids.token_ids[" + i + "] = " + id + " is outside [0, "
                        + vocab + ") (vocab_size)");
            }
            ids[i] = id;
        }
        return model.withBos(ids);
    }

    /**
     * Tokenize's BOS (gateway.proto {@code add_bos}): unset = the model's rule, the ids Generate would use; false =
     * none prepended; true = forced on: the BOS the tokenizer adds, or for a tokenizer that adds none (Qwen2's)
     * config.json's {@code bos_token_id} (ModelInfo's), prepended unless the ids already start with it. A model with
     * neither has no BOS to force: INVALID_ARGUMENT naming add_bos.
     */
    int[] tokenizeBos(int[] ids, TokenizeRequest r) {
        if (!r.hasAddBos()) {
            return model.withBos(ids);
        }
        if (!r.getAddBos()) {
            return ids;
        }
        int bos = model.promptBos().or(() -> model.config().bosTokenId()).orElseThrow(() ->
                new IllegalArgumentException("add_bos is true, but this model has no BOS token (its tokenizer adds "
                        + "none and config.json has no bos_token_id)"));
        return MoeModel.withBos(ids, bos);
    }

    /** Size limits first (they are cheap and hold whatever the model), then the template. */
    String renderChat(ChatInput c) {
        if (c.getMessagesCount() == 0) {
            throw new IllegalArgumentException("chat.messages is empty");
        }
        limits.checkChatMessages("chat.messages", c.getMessagesCount());
        long bytes = 0;
        for (var m : c.getMessagesList()) {
            bytes += PromptLimits.utf8Length(m.getContent()) + PromptLimits.utf8Length(m.getRole());
        }
        limits.checkChatBytes("chat.messages", bytes);
        ChatTemplate t = chat.orElseThrow(() -> new IllegalStateException(
                "chat input needs a chat template, and the model has none (chat_template.jinja, or chat_template in "
                        + "tokenizer_config.json)"));
        try {
            // at most the characters a prompt may have: a template repeating the chat by a count fails before it
            // builds more
            return t.render(c.getMessagesList().stream().map(m -> new ChatMessage(m.getRole(), m.getContent()))
                    .toList(), !c.hasAddGenerationPrompt() || c.getAddGenerationPrompt(), Map.of(),
                    limits.maxPromptBytes());
        } catch (RenderedChatTooLongException e) {
            throw tooLong("chat", e, limits);
        }
    }

    /**
     * The render of {@code field} passed its limit: the gateway's prompt byte budget (a text with more characters
     * has more UTF-8 bytes, so more tokens than a prompt may have), or the engine's own cap when that is smaller.
     * The same error as any prompt too long (HTTP 400 context_length_exceeded, gRPC INVALID_ARGUMENT).
     */
    static PromptTooLongException tooLong(String field, RenderedChatTooLongException e, PromptLimits limits) {
        String why = e.limit() >= limits.maxPromptBytes()
                ? ", more than " + limits.maxPromptTokens() + " prompt tokens can hold (at most "
                + limits.maxPromptBytes() + " bytes)"
                : ", the most a chat template may output";
        return new PromptTooLongException(field, "The chat template's output for " + field + " would be longer than "
                + e.limit() + " characters" + why);
    }

    /** NOT_FOUND unless {@code requested} is empty or the served model's name (gateway.proto). */
    void checkModel(String requested) {
        if (!requested.isEmpty() && !requested.equals(modelName())) {
            throw Status.NOT_FOUND.withDescription(StatusMapping.bounded("model \"" + requested
                    + "\" is not served here (serving \"" + modelName() + "\")")).asRuntimeException();
        }
    }

    static void checkRequestId(String id) {
        int bytes = id.getBytes(StandardCharsets.UTF_8).length;
        if (bytes > MAX_REQUEST_ID_BYTES) {
            throw new IllegalArgumentException("request_id has " + bytes + " bytes; at most " + MAX_REQUEST_ID_BYTES
                    + " are allowed");
        }
        // It goes into logs: a line break or another control character could forge log lines.
        if (id.codePoints().anyMatch(Character::isISOControl)) {
            throw new IllegalArgumentException("request_id must not contain control characters");
        }
    }

    GenerationRequest request(GenerateRequest r) {
        checkModel(r.getModel());
        checkRequestId(r.getRequestId());
        var s = r.getSampling();
        long maxTokens = Integer.toUnsignedLong(s.getMaxTokens());
        if (maxTokens > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("sampling.max_tokens must be at most " + Integer.MAX_VALUE + ", got "
                    + maxTokens);
        }
        if (!(s.getTemperature() >= 0) || Float.isInfinite(s.getTemperature())) {
            throw new IllegalArgumentException("sampling.temperature must be a finite number ≥ 0, got "
                    + s.getTemperature());
        }
        if (!(s.getTopP() >= 0 && s.getTopP() <= 1)) {
            throw new IllegalArgumentException("sampling.top_p must be in [0, 1] (0 or 1 = disabled), got " + s.getTopP());
        }
        long topK = Integer.toUnsignedLong(s.getTopK());
        if (topK > MAX_TOP_K) {
            throw new IllegalArgumentException("sampling.top_k must be in [0, " + MAX_TOP_K + "] (0 = disabled), got "
                    + topK);
        }
        long logprobs = Integer.toUnsignedLong(s.getLogprobs());
        if (logprobs > 5) {
            throw new IllegalArgumentException("sampling.logprobs must be in [0, 5], got " + logprobs);
        }
        String stopProblem = ServingRequest.stopProblem(s.getStopList(), ServingRequest.MAX_STOP);
        if (stopProblem != null) {
            throw new IllegalArgumentException("sampling.stop " + stopProblem);
        }
        // Checked on the value asked for, before it is clamped to the room the prompt leaves.
        String tooMany = maxTokens == 0 ? null : limits.maxTokensProblem(maxTokens);
        if (tooMany != null) {
            throw new IllegalArgumentException("sampling.max_tokens " + tooMany);
        }
        int[] ids = promptIds(r);
        int room = limits.context() - ids.length;
        // 0 = no explicit limit (gateway.proto): the rest of the context within the gateway's cap, which then ends
        // the completion with FINISH_REASON_LENGTH; an explicit value above the cap was refused above.
        int max = maxTokens == 0 ? limits.defaultMaxTokens(ids.length) : (int) Math.min(maxTokens, room);
        SamplingParams params = new SamplingParams(s.getTemperature(), s.getTopP() == 0 ? 1 : s.getTopP(),
                (int) topK, s.hasSeed() ? OptionalLong.of(s.getSeed()) : OptionalLong.empty(), max, s.getIgnoreEos());
        return new GenerationRequest(ids, params, r.getTrace(), logprobs > 0 ? (int) logprobs : -1);
    }

    String modelName() {
        return model.directory().getFileName().toString();
    }
}
