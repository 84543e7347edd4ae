package io.moemesh.gateway.serving;

import io.moemesh.gateway.dispatch.PromptDispatch;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.TokenLogprobs;

/** Where one request's output goes (an SSE stream, a gRPC stream, a pending HTTP response). */
public interface CompletionSink {

    /**
     * The sequence was admitted for the first time: {@code cachedPromptTokens} leading prompt tokens (full blocks
     * from position 0, BOS included) come from the prefix cache instead of being computed. Called once, on the
     * engine thread, before the first token; never when the request failed or was cancelled before admission.
     */
    default void onAdmitted(int cachedPromptTokens) {
    }

    /** A generated token, the text it makes safe to send (maybe empty), and its logprobs when asked for. */
    void onToken(int token, String textDelta, TokenLogprobs logprobs);

    /** The end: the finish reason, the held-back rest of the text, the whole result (ids, trace). */
    void onComplete(Completion completion);

    /**
     * The sequence failed or was stopped (never called for the client's own cancellation).
     *
     * @param restOfText the text held back so far (a partial stop-string match, an incomplete UTF-8 tail as
     *                   U+FFFD), empty when none: a sink that already streamed text sends it before the error, so
     *                   the streamed text still joins to the whole text of the tokens generated
     */
    void onError(Throwable error, String restOfText);

    /**
     * @param reason       "stop" (EOS or a stop string) or "length"
     * @param text         the whole generated text (truncated before a stop string)
     * @param generatedIds every generated token id
     * @param result       the engine's result with trace data; null when a stop string ended the sequence early
     * @param promptTokens the prompt's token count (BOS and chat-template tokens included)
     * @param cachedPromptTokens of {@code promptTokens}, those served from the prefix cache at the first admission
     *                     (a multiple of the block size; 0 without a hit): OpenAI's
     *                     {@code usage.prompt_tokens_details.cached_tokens}
     * @param dispatch     where a traced request's prompt rows went (all prefill chunks, this request's rows
     *                     only); {@link PromptDispatch#NONE} for an untraced one
     */
    record Completion(String reason, String restOfText, String text, int[] generatedIds, GenerationResult result,
                      int promptTokens, int cachedPromptTokens, PromptDispatch dispatch) {
    }
}
