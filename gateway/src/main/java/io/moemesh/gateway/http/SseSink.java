package io.moemesh.gateway.http;

import io.moemesh.gateway.serving.CompletionSink;
import io.moemesh.gateway.serving.GenerationService;
import io.moemesh.model.generate.TokenLogprobs;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.springframework.http.MediaType;
import org.springframework.web.context.request.async.DeferredResult;
import org.springframework.web.servlet.mvc.method.annotation.ResponseBodyEmitter;
import org.springframework.web.servlet.mvc.method.annotation.SseEmitter;
import tools.jackson.databind.json.JsonMapper;

/**
 * Streams a completion as server-sent events: one chunk per token, the final chunk with finish_reason, the
 * usage chunk when asked, then {@code data: [DONE]}. The response is committed (200, text/event-stream) only when
 * the first chunk is ready: until then {@link #response} is pending, so a failure before any text (overload, no
 * healthy expert, a prompt the engine refuses) is answered with its real status and OpenAI's error JSON. A chat's
 * role chunk goes out just before its first content chunk. A failure after chunks were sent can only be an SSE
 * event carrying the error JSON, followed by [DONE]; the text held back until then (a partial stop-string match)
 * goes out in a chunk just before it, so the streamed text is all the text of the tokens generated. A failed write
 * means the client went away: the sequence is cancelled and its KV blocks freed at the next step.
 *
 * <p>Each event is written as exactly {@code data: <json>\n\n}, OpenAI's wire format: SseEmitter's own event
 * builder writes {@code data:} without the space, which the SSE spec allows but clients that match the line
 * prefix {@code "data: "} (as many hand-written OpenAI clients do) would not see.
 */
final class SseSink implements CompletionSink {
    /** What SseEmitter writes its event text as: the response's content type stays text/event-stream. */
    private static final MediaType UTF8_TEXT = new MediaType("text", "plain", StandardCharsets.UTF_8);
    private final SseEmitter emitter = new SseEmitter(0L);
    /** Completes with the emitter (stream started) or with the error response. No timeout, as for the emitter. */
    final DeferredResult<Object> response = new DeferredResult<>(0L);
    private final OpenAiChunks chunks;
    private final JsonMapper json;
    private final boolean includeUsage;
    private final boolean logprobs;
    private final boolean chat;
    private final String requestId;
    private volatile GenerationService.Handle handle;
    private volatile boolean gone;
    private boolean started;

    SseSink(OpenAiChunks chunks, JsonMapper json, boolean includeUsage, boolean logprobs, boolean chat,
            String requestId) {
        this.chunks = chunks;
        this.json = json;
        this.includeUsage = includeUsage;
        this.logprobs = logprobs;
        this.chat = chat;
        this.requestId = requestId;
    }

    void attach(GenerationService.Handle h) {
        this.handle = h;
        emitter.onCompletion(this::clientGone);
        emitter.onTimeout(this::clientGone);
        emitter.onError(e -> clientGone());
        response.onError(e -> clientGone());
        response.onTimeout(this::clientGone);
        if (gone) {
            h.cancel();
        }
    }

    private void clientGone() {
        gone = true;
        GenerationService.Handle h = handle;
        if (h != null) {
            h.cancel();
        }
    }

    /** Commits the stream: hands the emitter to Spring (events sent before that are buffered by it). */
    private synchronized void start() {
        if (!started) {
            started = true;
            response.setResult(emitter);
            if (chat) {
                sendRaw(json.writeValueAsString(chunks.chunk("", null, null, true)));
            }
        }
    }

    private void send(Map<String, Object> chunk) {
        sendRaw(json.writeValueAsString(chunk));
    }

    private synchronized void sendRaw(String data) {
        if (gone) {
            return;
        }
        try {
            emitter.send(Set.of(new ResponseBodyEmitter.DataWithMediaType("data: " + data + "\n\n", UTF8_TEXT)));
        } catch (IOException | IllegalStateException e) {
            clientGone();
        }
    }

    @Override
    public void onToken(int token, String textDelta, TokenLogprobs lp) {
        if (textDelta.isEmpty() && lp == null) {
            return;
        }
        start();
        send(chunks.chunk(textDelta, lp == null || !logprobs ? null : List.of(lp), null, false));
    }

    @Override
    public void onComplete(Completion c) {
        start();
        send(chunks.chunk(c.restOfText(), logprobs ? List.of() : null, c.reason(), false));
        if (includeUsage) {
            send(chunks.usageChunk(c));
        }
        sendRaw("[DONE]");
        emitter.complete();
    }

    @Override
    public synchronized void onError(Throwable error, String restOfText) {
        var r = OpenAiErrors.of(error, requestId);
        if (!started) {
            // Nothing was sent: the error keeps its status, and like a non-streamed answer carries no text.
            started = true;
            response.setResult(r);
            return;
        }
        if (!restOfText.isEmpty()) {
            send(chunks.chunk(restOfText, logprobs ? List.of() : null, null, false));
        }
        send(r.getBody());
        sendRaw("[DONE]");
        emitter.complete();
    }
}
