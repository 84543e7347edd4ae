package io.moemesh.gateway.http;

import io.moemesh.gateway.serving.CompletionSink;
import io.moemesh.gateway.serving.GenerationService;
import io.moemesh.model.generate.TokenLogprobs;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
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
 * <p>Writes leave the engine thread (SequenceListener: callbacks run on the scheduler's thread and must be cheap): a
 * write to a client whose receive window is full blocks until the container's write timeout, and the engine thread
 * serves every sequence. Events go to a per-stream queue drained in order by one virtual thread at a time, the
 * final chunk and {@code [DONE]} last, then the emitter is completed. A client that stops reading shows as a queue
 * that only grows: once its unsent event text passes {@code maxBacklogBytes} (counted in characters, which for the
 * chunks' JSON are about bytes; the closing events are never refused), the sequence is cancelled
 * ({@code moemesh.gateway.requests} status client_stalled, apart from clients that went away; logged at info with
 * the request id), the queue dropped, and the response ends after the write in progress, without [DONE].
 *
 * <p>Each event is written as exactly {@code data: <json>\n\n}, OpenAI's wire format: SseEmitter's own event
 * builder writes {@code data:} without the space, which the SSE spec allows but clients that match the line
 * prefix {@code "data: "} (as many hand-written OpenAI clients do) would not see.
 */
final class SseSink implements CompletionSink {
    private static final Logger log = LoggerFactory.getLogger(SseSink.class);
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
    private final long maxBacklogBytes;
    private volatile GenerationService.Handle handle;
    private volatile boolean gone;
    /** Gone because it stopped reading (past the backlog bound), not because it went away. */
    private volatile boolean stalledClient;
    private boolean started;
    /** The closing events are being queued: they pass the backlog bound (a few small events at most). */
    private boolean ending;
    /** Event text not yet handed to the emitter, and {@link #END} last; guarded by itself. */
    private final ArrayDeque<String> queue = new ArrayDeque<>();
    /** Characters of event text in {@link #queue}; guarded by {@link #queue}. */
    private long backlog;
    /** A writer thread is draining {@link #queue}; guarded by {@link #queue}. */
    private boolean writing;
    /** Marks the end of the stream in {@link #queue}: the writer completes the emitter there. */
    private static final String END = new String("end of stream");

    SseSink(OpenAiChunks chunks, JsonMapper json, boolean includeUsage, boolean logprobs, boolean chat,
            String requestId, long maxBacklogBytes) {
        this.maxBacklogBytes = maxBacklogBytes;
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
            cancel(h);
        }
    }

    private void clientGone() {
        gone = true;
        GenerationService.Handle h = handle;
        if (h != null) {
            cancel(h);
        }
    }

    /** Counted apart: a client that stopped reading is not one that went away. */
    private void cancel(GenerationService.Handle h) {
        if (stalledClient) {
            h.cancelStalled();
        } else {
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

    private void sendRaw(String data) {
        enqueue("data: " + data + "\n\n", ending);
    }

    /** Queues an event (or {@link #END}) for the writer, starting one when none runs. Never blocks on the client. */
    private void enqueue(String event, boolean closing) {
        boolean stalled = false;
        boolean startWriter = false;
        synchronized (queue) {
            if (gone) {
                return;
            }
            if (!closing && backlog + event.length() > maxBacklogBytes) {
                // The client has not taken what the socket buffers hold, nor this much more: it is not reading.
                stalled = true;
                stalledClient = true;
                gone = true;
                queue.clear();
                queue.add(END);
                backlog = 0;
            } else {
                queue.add(event);
                backlog += event == END ? 0 : event.length();
            }
            if (!writing) {
                writing = true;
                startWriter = true;
            }
        }
        if (stalled) {
            log.info("request {} ended: the client did not read its event stream, more than {} characters of events "
                    + "waited for it", requestId, maxBacklogBytes);
            clientGone();
        }
        if (startWriter) {
            Thread.ofVirtual().name("sse-writer-" + requestId).start(this::drain);
        }
    }

    /** The writer: hands the queued events to the emitter in order (a write may block), then ends. */
    private void drain() {
        while (true) {
            String event;
            synchronized (queue) {
                event = queue.poll();
                if (event == null) {
                    writing = false;
                    return;
                }
                backlog -= event == END ? 0 : event.length();
            }
            if (event == END) {
                emitter.complete();
                continue;
            }
            try {
                emitter.send(Set.of(new ResponseBodyEmitter.DataWithMediaType(event, UTF8_TEXT)));
            } catch (IOException | IllegalStateException e) {
                synchronized (queue) {
                    gone = true;
                    queue.clear();
                    backlog = 0;
                    writing = false;
                }
                clientGone();
                return;
            }
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
        ending = true;
        send(chunks.chunk(c.restOfText(), logprobs ? List.of() : null, c.reason(), false));
        if (includeUsage) {
            send(chunks.usageChunk(c));
        }
        sendRaw("[DONE]");
        enqueue(END, true);
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
        ending = true;
        if (!restOfText.isEmpty()) {
            send(chunks.chunk(restOfText, logprobs ? List.of() : null, null, false));
        }
        send(r.getBody());
        sendRaw("[DONE]");
        enqueue(END, true);
    }
}
