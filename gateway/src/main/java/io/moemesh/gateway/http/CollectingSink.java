package io.moemesh.gateway.http;

import io.moemesh.gateway.serving.CompletionSink;
import io.moemesh.model.generate.TokenLogprobs;
import java.util.ArrayList;
import java.util.List;
import org.springframework.http.ResponseEntity;
import org.springframework.web.context.request.async.DeferredResult;

/** Collects a non-streamed completion into one response. */
final class CollectingSink implements CompletionSink {
    private final OpenAiChunks chunks;
    private final boolean logprobs;
    private final String requestId;
    private final List<TokenLogprobs> collected = new ArrayList<>();
    /**
     * No timeout: a long generation is not an error. A client that disconnects does not end it either: while an
     * async request writes nothing, Tomcat does not watch its socket and reports no error, so an abandoned
     * non-streamed request runs to its end (and counts as ok) and its answer is written to a closed connection.
     * What bounds it is its own length: max_tokens (unset on a chat: the room left in the context, at most
     * moemesh.gateway.admission.max-new-tokens), never more than the model's context; a drain's grace at
     * shutdown; and the engine thread's end, which ends every sequence it held with 503 (EngineLoop). Streamed
     * requests do notice: their writes fail (SseSink).
     */
    final DeferredResult<Object> response = new DeferredResult<>(0L);

    CollectingSink(OpenAiChunks chunks, boolean logprobs, String requestId) {
        this.chunks = chunks;
        this.logprobs = logprobs;
        this.requestId = requestId;
    }

    @Override
    public void onToken(int token, String textDelta, TokenLogprobs lp) {
        if (lp != null) {
            collected.add(lp);
        }
    }

    @Override
    public void onComplete(Completion c) {
        response.setResult(ResponseEntity.ok(chunks.response(c, logprobs ? collected : null)));
    }

    /** A response that fails is only its error: no part of the text (whatever was held back), as before. */
    @Override
    public void onError(Throwable error, String restOfText) {
        response.setResult(OpenAiErrors.of(error, requestId));
    }
}
