package io.moemesh.gateway.http;

import io.moemesh.gateway.serving.CompletionSink;
import io.moemesh.model.generate.TokenLogprobs;
import io.moemesh.model.tokenizer.TextOffsets;
import io.moemesh.model.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The JSON objects of OpenAI's completions and chat completions APIs (responses and stream chunks), as maps
 * in the field order of https://platform.openai.com/docs/api-reference.
 */
final class OpenAiChunks {
    private final boolean chat;
    private final String id;
    private final long created;
    private final String model;
    private final Tokenizer tokenizer;
    /**
     * Completions logprobs: where each token's text starts in the completion's text, in code points (as Python and so
     * OpenAI's and vLLM's servers count), carried across a stream's chunks; bytes that are not valid UTF-8 count as
     * the tokenizer's decoder turns them into U+FFFD in the text ({@link TextOffsets}).
     */
    private final TextOffsets textOffsets;
    /**
     * A stream with {@code stream_options.include_usage}: every chunk but the usage chunk has {@code "usage": null},
     * as OpenAI's reference says ("All other chunks will also include a usage field, but with a null value"); without
     * it no chunk has the key, as from OpenAI.
     */
    private final boolean includeUsage;

    OpenAiChunks(boolean chat, String id, String model, Tokenizer tokenizer, boolean includeUsage) {
        this.includeUsage = includeUsage;
        this.chat = chat;
        this.id = id;
        this.created = System.currentTimeMillis() / 1000;
        this.model = model;
        this.tokenizer = tokenizer;
        this.textOffsets = tokenizer.textOffsets();
    }

    String id() {
        return id;
    }

    private Map<String, Object> envelope(boolean chunk) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("id", id);
        m.put("object", chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion");
        m.put("created", created);
        m.put("model", model);
        return m;
    }

    /**
     * A stream chunk: text delta (chat: {@code delta.content}), optional logprobs and finish reason; with
     * include_usage, {@code "usage": null}.
     */
    Map<String, Object> chunk(String text, List<TokenLogprobs> logprobs, String finishReason, boolean roleOnly) {
        Map<String, Object> choice = new LinkedHashMap<>();
        choice.put("index", 0);
        if (chat) {
            Map<String, Object> delta = new LinkedHashMap<>();
            if (roleOnly) {
                delta.put("role", "assistant");
                delta.put("content", "");
            } else if (finishReason == null || !text.isEmpty()) {
                delta.put("content", text);
            }
            choice.put("delta", delta);
        } else {
            choice.put("text", text);
        }
        choice.put("logprobs", logprobs == null ? null : logprobs(logprobs));
        choice.put("finish_reason", finishReason);
        Map<String, Object> m = envelope(true);
        m.put("choices", List.of(choice));
        if (includeUsage) {
            m.put("usage", null);
        }
        return m;
    }

    /** The last chunk of a stream with include_usage: no choices, the usage. */
    Map<String, Object> usageChunk(CompletionSink.Completion c) {
        Map<String, Object> m = envelope(true);
        m.put("choices", List.of());
        m.put("usage", usage(c));
        return m;
    }

    /** The whole (non-streamed) response. */
    Map<String, Object> response(CompletionSink.Completion c, List<TokenLogprobs> logprobs) {
        Map<String, Object> choice = new LinkedHashMap<>();
        choice.put("index", 0);
        if (chat) {
            Map<String, Object> msg = new LinkedHashMap<>();
            msg.put("role", "assistant");
            msg.put("content", c.text());
            choice.put("message", msg);
        } else {
            choice.put("text", c.text());
        }
        choice.put("logprobs", logprobs == null ? null : logprobs(logprobs));
        choice.put("finish_reason", c.reason());
        Map<String, Object> m = envelope(false);
        m.put("choices", List.of(choice));
        m.put("usage", usage(c));
        return m;
    }

    /**
     * OpenAI's usage object; {@code prompt_tokens_details.cached_tokens} (OpenAI's and vLLM's name) is always
     * present: the prompt tokens served from the prefix cache, 0 without a hit.
     */
    private static Map<String, Object> usage(CompletionSink.Completion c) {
        int prompt = c.promptTokens();
        int completion = c.generatedIds().length;
        Map<String, Object> u = new LinkedHashMap<>();
        u.put("prompt_tokens", prompt);
        u.put("completion_tokens", completion);
        u.put("total_tokens", prompt + completion);
        u.put("prompt_tokens_details", Map.of("cached_tokens", c.cachedPromptTokens()));
        return u;
    }

    /** The text a token adds (a SentencePiece word with its space), see {@link Tokenizer#tokenText}. */
    private String text(int token) {
        return tokenizer.tokenText(token);
    }

    private Object logprobs(List<TokenLogprobs> lps) {
        if (chat) {
            // OpenAI's chat shape: the sampled token, and exactly top_logprobs alternatives beside it.
            List<Map<String, Object>> content = new ArrayList<>();
            for (TokenLogprobs lp : lps) {
                Map<String, Object> t = tokenEntry(lp.token(), lp.logprob());
                List<Map<String, Object>> top = new ArrayList<>();
                for (int i = 0; i < lp.topIds().length; i++) {
                    top.add(tokenEntry(lp.topIds()[i], lp.topLogprobs()[i]));
                }
                t.put("top_logprobs", top);
                content.add(t);
            }
            return Map.of("content", content);
        }
        List<String> tokens = new ArrayList<>();
        List<Float> tokenLogprobs = new ArrayList<>();
        List<Map<String, Float>> top = new ArrayList<>();
        List<Integer> offsets = new ArrayList<>();
        for (TokenLogprobs lp : lps) {
            Map<Integer, String> keys = keys(lp);
            String token = keys.get(lp.token());
            tokens.add(token);
            offsets.add(textOffsets.add(lp.token()));
            tokenLogprobs.add(lp.logprob());
            // OpenAI: "the API will always return the logprob of the sampled token, so there may be up to
            // logprobs+1 elements" (vLLM too): the alternatives, most likely first, then the sampled token if it
            // is not among them.
            Map<String, Float> alts = new LinkedHashMap<>();
            for (int i = 0; i < lp.topIds().length; i++) {
                int id = lp.topIds()[i];
                alts.put(keys.get(id), id == lp.token() ? lp.logprob() : lp.topLogprobs()[i]);
            }
            alts.putIfAbsent(token, lp.logprob());
            top.add(alts);
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("tokens", tokens);
        m.put("token_logprobs", tokenLogprobs);
        m.put("top_logprobs", top);
        m.put("text_offset", offsets);
        return m;
    }

    /**
     * The completions keys of a step's tokens, the sampled one first, so that {@code tokens[i]} is always the key of
     * the sampled token in {@code top_logprobs[i]}: each token's {@link #alternativeKey}; a later token whose key is
     * taken (two tokens with the same text, such as a byte-fallback {@code <0x61>} and "a") is
     * {@code token_id:<id>} (vLLM's spelling of a token by id) instead, so the sampled token keeps its text and no
     * entry is lost.
     */
    private Map<Integer, String> keys(TokenLogprobs lp) {
        Map<Integer, String> keys = new LinkedHashMap<>();
        java.util.Set<String> taken = new java.util.HashSet<>();
        keys.put(lp.token(), alternativeKey(lp.token()));
        taken.add(keys.get(lp.token()));
        for (int id : lp.topIds()) {
            if (!keys.containsKey(id)) {
                String key = alternativeKey(id);
                keys.put(id, taken.add(key) ? key : "token_id:" + id);
            }
        }
        return keys;
    }

    /**
     * The key of a token in completions' {@code tokens} and {@code top_logprobs}, a map from token text: a token
     * that is a part of a UTF-8 character decodes to U+FFFD, like every other such part, and those alternatives
     * would collapse into one key. Such a token is keyed by its bytes instead, as OpenAI writes them:
     * {@code bytes:\xe2\x80}.
     */
    private String alternativeKey(int token) {
        String s = text(token);
        if (s.indexOf('\uFFFD') < 0) {
            return s;
        }
        byte[] bytes = tokenizer.tokenBytes(token);
        if (bytes.length == 0 || java.util.Arrays.equals(bytes, s.getBytes(StandardCharsets.UTF_8))) {
            return s;
        }
        StringBuilder b = new StringBuilder("bytes:");
        for (byte x : bytes) {
            b.append(String.format("\\x%02x", x & 0xff));
        }
        return b.toString();
    }

    private Map<String, Object> tokenEntry(int token, float logprob) {
        Map<String, Object> t = new LinkedHashMap<>();
        String s = text(token);
        t.put("token", s);
        t.put("logprob", logprob);
        // OpenAI: "the UTF-8 bytes representation of the token", there so that the bytes of a character split
        // across tokens can be joined; the token's own bytes, then, not those of its text (where such a part is
        // U+FFFD), with a SentencePiece word's space as in the text. None for a special token.
        List<Integer> bytes = new ArrayList<>();
        for (byte b : tokenizer.tokenBytes(token)) {
            bytes.add(b & 0xff);
        }
        t.put("bytes", bytes);
        return t;
    }
}
