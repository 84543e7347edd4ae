package io.moemesh.gateway.serving;

import java.util.OptionalInt;

/**
 * Refuses prompts that cannot fit before they cost memory and CPU: a text longer than
 * {@code maxPromptTokens × maxInputBytesPerToken} UTF-8 bytes certainly tokenizes to more than
 * {@code maxPromptTokens} tokens (see {@code Tokenizer.maxInputBytesPerToken}), so it is refused without being
 * tokenized; a chat is refused by its message count and by the total bytes of its contents before its template
 * runs. The same limits hold for HTTP and gRPC; the field names differ, so every check takes the field to name.
 */
public final class PromptLimits {
    private final int maxPromptTokens;
    private final int maxNewTokens;
    private final int context;
    private final long maxPromptBytes;
    private final int maxChatMessages;

    /**
     * @param context               the longest sequence served, prompt + completion tokens: the model's
     *                              max_position_embeddings, or fewer when the KV cache holds fewer positions
     * @param configuredMaxPrompt   the configured prompt limit; the effective one is at most context − 1 (one
     *                              token must remain to generate)
     * @param maxInputBytesPerToken the tokenizer's bound; empty when it has none (then only tokens are counted)
     * @param maxChatMessages       messages a chat may have
     */
    public PromptLimits(int context, int configuredMaxPrompt, OptionalInt maxInputBytesPerToken, int maxChatMessages) {
        this(context, configuredMaxPrompt, context, maxInputBytesPerToken, maxChatMessages);
    }

    /**
     * @param configuredMaxNew the configured cap on completion tokens (moemesh.gateway.admission.max-new-tokens, the
     *                         context when unset): what a request that sets no max_tokens gets at most
     */
    public PromptLimits(int context, int configuredMaxPrompt, int configuredMaxNew, OptionalInt maxInputBytesPerToken,
                        int maxChatMessages) {
        if (context < 2 || configuredMaxPrompt < 1 || configuredMaxNew < 1 || maxChatMessages < 1) {
            throw new IllegalArgumentException("context ≥ 2, max prompt tokens ≥ 1, max new tokens ≥ 1 and max chat "
                    + "messages ≥ 1 are required, got " + context + ", " + configuredMaxPrompt + ", " + configuredMaxNew
                    + ", " + maxChatMessages);
        }
        this.context = context;
        this.maxPromptTokens = Math.min(configuredMaxPrompt, context - 1);
        this.maxNewTokens = configuredMaxNew;
        this.maxPromptBytes = maxInputBytesPerToken.isPresent()
                ? (long) maxPromptTokens * maxInputBytesPerToken.getAsInt() : Long.MAX_VALUE;
        this.maxChatMessages = maxChatMessages;
    }

    /**
     * The longest sequence served, prompt and completion: the model's context, or the KV cache's positions when
     * those are fewer (what /v1/models reports as {@code max_model_len}).
     */
    public int context() {
        return context;
    }

    /** The most tokens a prompt may have, BOS and template tokens included. */
    public int maxPromptTokens() {
        return maxPromptTokens;
    }

    /**
     * The completion budget of a request that sets no max_tokens: the rest of the context after its
     * {@code promptTokens}, at most the configured cap. The cap is a limit like the context, reached with finish
     * reason length (gateway.proto: max_tokens 0 = no explicit limit, the gateway may enforce a cap), not a reason
     * to refuse the request; only an explicit max_tokens above it is refused ({@link #maxTokensProblem}).
     */
    public int defaultMaxTokens(int promptTokens) {
        return Math.min(context - promptTokens, maxNewTokens);
    }

    /**
     * Why an explicit max_tokens cannot be served, or null. Checked on the value the caller gave, before it is
     * clamped to the room the prompt leaves: a value above the configured cap is refused whatever the prompt's
     * length. A cap at or above the context (none configured: the context) refuses nothing here: on gRPC a value past
     * the context ends there with finish reason length, as gateway.proto says of the context limit; the HTTP API
     * refuses it afterwards, as OpenAI and vLLM do (context_length_exceeded, OpenAiController).
     */
    public String maxTokensProblem(long maxTokens) {
        return maxNewTokens < context && maxTokens > maxNewTokens
                ? maxTokens + " exceeds the limit of " + maxNewTokens : null;
    }

    /** UTF-8 bytes beyond which a text is certainly too many tokens; Long.MAX_VALUE when unknown. */
    public long maxPromptBytes() {
        return maxPromptBytes;
    }

    public int maxChatMessages() {
        return maxChatMessages;
    }

    private String limit() {
        return maxPromptTokens == context - 1
                ? "This model's maximum context length is " + context + " tokens"
                : "The prompt limit of this gateway is " + maxPromptTokens + " tokens";
    }

    /** Before tokenizing {@code text}: refuses it when it is certainly too long. */
    public void checkText(String field, CharSequence text) {
        // Every UTF-16 unit is at least one UTF-8 byte: most long texts are refused without counting.
        if (text.length() > maxPromptBytes || utf8Length(text) > maxPromptBytes) {
            throw new PromptTooLongException(field, limit() + "; " + field + " has " + utf8Length(text)
                    + " bytes of text, more than " + maxPromptTokens + " tokens can hold (at most " + maxPromptBytes
                    + " bytes)");
        }
    }

    /** While reading a chat: its contents so far already make a prompt certainly too long. */
    public void checkChatBytes(String field, long contentBytes) {
        if (contentBytes > maxPromptBytes) {
            throw new PromptTooLongException(field, limit() + "; the contents of " + field + " have more than "
                    + maxPromptBytes + " bytes of text, more than " + maxPromptTokens + " tokens can hold");
        }
    }

    /** While reading a chat: {@code count} messages so far. */
    public void checkChatMessages(String field, long count) {
        if (count > maxChatMessages) {
            throw new IllegalArgumentException(field + " has more than " + maxChatMessages + " messages, the limit"
                    + " of this gateway");
        }
    }

    /** After tokenizing: the prompt's ids, BOS included; the message names {@code field}, as the other checks'. */
    public void checkTokens(String field, int tokens) {
        if (tokens > maxPromptTokens) {
            throw new PromptTooLongException(field, limit() + "; the prompt (" + field + ") has " + tokens + " tokens"
                    + (maxPromptTokens == context - 1 ? " and at least one must remain for the completion" : ""));
        }
    }

    /** The UTF-8 length of {@code s}, as String.getBytes(UTF_8) encodes it (an unpaired surrogate becomes "?"). */
    public static long utf8Length(CharSequence s) {
        long n = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x80) {
                n++;
            } else if (c < 0x800) {
                n += 2;
            } else if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                n += 4;
                i++;
            } else if (Character.isSurrogate(c)) {
                n++;
            } else {
                n += 3;
            }
        }
        return n;
    }
}
