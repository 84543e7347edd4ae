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
    /** No timeout: a long generation is not an error (the client's own timeout or disconnect ends it). */
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
