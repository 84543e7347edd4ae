package io.moemesh.gateway.http;

import io.moemesh.gateway.serving.CompletionSink;
import io.moemesh.model.generate.TokenLogprobs;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.springframework.http.ResponseEntity;

/** Collects a non-streamed completion into one response. */
final class CollectingSink implements CompletionSink {
    private final OpenAiChunks chunks;
    private final boolean logprobs;
    private final List<TokenLogprobs> collected = new ArrayList<>();
    final CompletableFuture<ResponseEntity<Map<String, Object>>> response = new CompletableFuture<>();

    CollectingSink(OpenAiChunks chunks, boolean logprobs) {
        this.chunks = chunks;
        this.logprobs = logprobs;
    }

    @Override
    public void onToken(int token, String textDelta, TokenLogprobs lp) {
        if (lp != null) {
            collected.add(lp);
        }
    }

    @Override
    public void onComplete(Completion c) {
        response.complete(ResponseEntity.ok(chunks.response(c, logprobs ? collected : null)));
    }

    @Override
    public void onError(Throwable error) {
        response.complete(OpenAiErrors.of(error));
    }
}
