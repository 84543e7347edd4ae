package io.moemesh.gateway.http;

import io.moemesh.gateway.serving.CompletionSink;
import io.moemesh.gateway.serving.GenerationService;
import io.moemesh.model.generate.TokenLogprobs;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import org.springframework.web.servlet.mvc.method.annotation.SseEmitter;
import tools.jackson.databind.json.JsonMapper;

/**
 * Streams a completion as server-sent events: one chunk per token, the final chunk with finish_reason, the
 * usage chunk when asked, then {@code data: [DONE]}. A failed write means the client went away: the sequence
 * is cancelled and its KV blocks freed at the next step.
 */
final class SseSink implements CompletionSink {
    private final SseEmitter emitter;
    private final OpenAiChunks chunks;
    private final JsonMapper json;
    private final boolean includeUsage;
    private final boolean logprobs;
    private volatile GenerationService.Handle handle;
    private volatile boolean gone;

    SseSink(SseEmitter emitter, OpenAiChunks chunks, JsonMapper json, boolean includeUsage, boolean logprobs) {
        this.emitter = emitter;
        this.chunks = chunks;
        this.json = json;
        this.includeUsage = includeUsage;
        this.logprobs = logprobs;
    }

    void attach(GenerationService.Handle h) {
        this.handle = h;
        emitter.onCompletion(this::clientGone);
        emitter.onTimeout(this::clientGone);
        emitter.onError(e -> clientGone());
    }

    private void clientGone() {
        gone = true;
        GenerationService.Handle h = handle;
        if (h != null) {
            h.cancel();
        }
    }

    void send(Map<String, Object> chunk) {
        sendRaw(json.writeValueAsString(chunk));
    }

    private synchronized void sendRaw(String data) {
        if (gone) {
            return;
        }
        try {
            emitter.send(SseEmitter.event().data(data));
        } catch (IOException | IllegalStateException e) {
            clientGone();
        }
    }

    @Override
    public void onToken(int token, String textDelta, TokenLogprobs lp) {
        if (textDelta.isEmpty() && lp == null) {
            return;
        }
        send(chunks.chunk(textDelta, lp == null || !logprobs ? null : List.of(lp), null, false));
    }

    @Override
    public void onComplete(Completion c) {
        send(chunks.chunk(c.restOfText(), logprobs ? List.of() : null, c.reason(), false));
        if (includeUsage) {
            send(chunks.usageChunk(c.promptTokens(), c.generatedIds().length));
        }
        sendRaw("[DONE]");
        emitter.complete();
    }

    @Override
    public void onError(Throwable error) {
        var r = OpenAiErrors.of(error);
        send(r.getBody());
        sendRaw("[DONE]");
        emitter.complete();
    }
}
