package io.moemesh.gateway.grpc;

import io.moemesh.model.MoeModel;
import io.moemesh.model.chat.ChatMessage;
import io.moemesh.model.chat.ChatTemplate;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.proto.gateway.v1.ChatInput;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import java.util.Optional;
import java.util.OptionalLong;

/** Turns a gateway.v1 request into token ids and sampling parameters, refusing what it cannot honour. */
final class PromptBuilder {
    private final MoeModel model;
    private final Optional<ChatTemplate> chat;

    PromptBuilder(MoeModel model, Optional<ChatTemplate> chat) {
        this.model = model;
        this.chat = chat;
    }

    int[] promptIds(GenerateRequest r) {
        return switch (r.getInputCase()) {
            case PROMPT -> model.encodePrompt(r.getPrompt());
            case PROMPT_IDS -> {
                int[] ids = r.getPromptIds().getTokenIdsList().stream().mapToInt(Integer::intValue).toArray();
                if (ids.length == 0) {
                    throw new IllegalArgumentException("prompt_ids is empty");
                }
                yield model.withBos(ids);
            }
            case CHAT -> model.withBos(model.tokenizer().encode(renderChat(r.getChat())));
            case INPUT_NOT_SET -> throw new IllegalArgumentException("the request has no input: set prompt, prompt_ids or chat");
        };
    }

    String renderChat(ChatInput c) {
        ChatTemplate t = chat.orElseThrow(() -> new IllegalArgumentException(
                "chat input needs a chat template, and the model has none (tokenizer_config.json chat_template)"));
        if (c.getMessagesCount() == 0) {
            throw new IllegalArgumentException("chat.messages is empty");
        }
        return t.render(c.getMessagesList().stream().map(m -> new ChatMessage(m.getRole(), m.getContent())).toList(),
                !c.hasAddGenerationPrompt() || c.getAddGenerationPrompt());
    }

    GenerationRequest request(GenerateRequest r) {
        if (!r.getModel().isEmpty() && !r.getModel().equals(modelName())) {
            throw new IllegalArgumentException("model \"" + r.getModel() + "\" is not served here (serving \"" + modelName() + "\")");
        }
        int[] ids = promptIds(r);
        int maxPos = model.config().maxPositionEmbeddings();
        if (ids.length >= maxPos) {
            throw new IllegalArgumentException("prompt of " + ids.length + " tokens exceeds the context: "
                    + "max_position_embeddings is " + maxPos);
        }
        var s = r.getSampling();
        if (s.getLogprobs() > 5) {
            throw new IllegalArgumentException("sampling.logprobs must be in [0, 5], got " + s.getLogprobs());
        }
        int room = maxPos - ids.length;
        int maxTokens = s.getMaxTokens() == 0 ? room : Math.min(s.getMaxTokens(), room);
        SamplingParams params = new SamplingParams(s.getTemperature(), s.getTopP() == 0 ? 1 : s.getTopP(),
                s.getTopK(), s.hasSeed() ? OptionalLong.of(s.getSeed()) : OptionalLong.empty(), maxTokens,
                s.getIgnoreEos());
        return new GenerationRequest(ids, params, r.getTrace(), s.getLogprobs() > 0 ? s.getLogprobs() : -1);
    }

    String modelName() {
        return model.directory().getFileName().toString();
    }
}
