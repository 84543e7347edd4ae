package io.moemesh.gateway.http;

import io.moemesh.gateway.serving.PromptLimits;
import io.moemesh.model.chat.ChatMessage;
import java.io.InputStream;
import java.util.List;
import java.util.Map;
import tools.jackson.databind.json.JsonMapper;

/**
 * The parameters of a completions or chat completions request, validated. Parameters MoE Mesh does not
 * implement, and fields it does not know, are refused with 400 naming them, never silently ignored (a client
 * relying on a penalty or on n > 1 would get a wrong answer otherwise); only fields that cannot change the answer
 * are accepted unused ({@link OpenAiFields}).
 *
 * @param prompt    completions: the prompt text (null when promptIds is given)
 * @param promptIds completions: token ids given directly (each in [0, 2^31); the vocabulary bound is checked
 *                  by the caller, which knows the model)
 * @param messages  chat: the conversation
 * @param chatOptions chat: how the template renders it (completions: {@link ChatOptions#DEFAULT})
 * @param addSpecialTokens true (the default): the model's BOS rule; false: no BOS is prepended, to text, token ids
 *                  or a rendered chat alike (vLLM's add_special_tokens)
 * @param maxTokens -1 when absent (completions then default to 16, chat to the rest of the context);
 *                  max_completion_tokens when given (OpenAI's newer name, which wins), else max_tokens
 * @param maxTokensParam the field {@code maxTokens} came from, for errors about its value
 * @param logprobs  -1: none; n: the sampled token's logprob and n alternatives
 */
record OpenAiRequest(String model, String prompt, int[] promptIds, List<ChatMessage> messages,
                     ChatOptions chatOptions, boolean addSpecialTokens, int maxTokens, String maxTokensParam,
                     List<String> stop, double temperature, double topP, int topK, Long seed, boolean stream,
                     boolean includeUsage, int logprobs, boolean ignoreEos) {

    /**
     * How the chat template renders the conversation, as transformers' apply_chat_template takes it.
     *
     * @param addGenerationPrompt  end with the header of an assistant turn (default true)
     * @param continueFinalMessage end with the final message itself, open, for the model to continue it
     * @param variables            chat_template_kwargs: further template variables (e.g. enable_thinking)
     */
    record ChatOptions(boolean addGenerationPrompt, boolean continueFinalMessage, Map<String, Object> variables) {
        static final ChatOptions DEFAULT = new ChatOptions(true, false, Map.of());
    }

    /** OpenAI's limit on stop sequences (the gRPC API allows more). */
    static final int MAX_STOP = 4;

    /**
     * Reads and validates a request body; every problem is an {@link OpenAiException} naming the field (a prompt
     * that cannot fit: {@code context_length_exceeded}).
     */
    static OpenAiRequest parse(InputStream body, boolean chat, JsonMapper json, PromptLimits limits) {
        return OpenAiRequestParser.parse(body, chat, json, limits);
    }
}
