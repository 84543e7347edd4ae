package io.moemesh.gateway.grpc;

import com.google.protobuf.ByteString;
import io.grpc.stub.ServerCallStreamObserver;
import io.moemesh.gateway.serving.CompletionSink;
import io.moemesh.gateway.serving.DrainExpiredException;
import io.moemesh.gateway.serving.GenerationService;
import io.moemesh.model.generate.TokenLogprobs;
import io.moemesh.model.tokenizer.Tokenizer;
import io.moemesh.proto.gateway.v1.FinishReason;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.TokenLogprob;
import io.moemesh.proto.gateway.v1.TopLogprob;
import io.moemesh.proto.gateway.v1.Usage;
import io.moemesh.service.grpc.CallReset;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Streams one request to its gRPC caller: a message per token with the text it makes safe to send, then a
 * final message with finish reason, usage and trace ({@link TraceMessage}: input_ids always; logits, routes with
 * their weights, and where this request's own prompt rows went when it asked for a trace and completed). Runs on the
 * engine thread. A failure before the first token ends the call with its status (its trailers carrying the request
 * id, {@link GatewayStatus#REQUEST_ID}); after tokens were streamed it ends
 * with a final message carrying FINISH_REASON_ERROR and {@code error} (the status as google.rpc.Status), usage and
 * the trace's input_ids, and the call completes OK, as gateway.proto promises: the caller keeps the tokens it got,
 * with the text held back until then on that final message, and learns why there are no more.
 *
 * <p>Flow control: gRPC queues whatever {@code onNext} is given, so a client that stops reading would make the
 * server hold every token message of its stream. The engine thread never waits for the client; instead the
 * serialized bytes of messages sent while the call is not ready ({@code isReady}, reset when it is again) count
 * against {@code maxBacklogBytes} ({@code moemesh.gateway.admission.max-stream-backlog-bytes}, the bound of the SSE
 * streams): past it the sequence is cancelled ({@code moemesh.gateway.requests} status client_stalled, apart from
 * clients that cancel; logged at info with the request id) and the call's stream is reset ({@link CallReset}): the
 * transport drops the messages it still queued for the client at once, and the client learns of it (CANCELLED)
 * without reading them, once it has read what it already received. Ending the call with a status instead would
 * queue its trailers behind those messages, which would stay in memory until the client read them or its
 * connection closed.
 * Without a reset (a server without {@link CallReset#tracerFactory()}) it ends RESOURCE_EXHAUSTED saying the client
 * did not read. The closing message is never refused (one small message).
 */
final class GenerateStream implements CompletionSink {
    private static final Logger log = LoggerFactory.getLogger(GenerateStream.class);
    private final ServerCallStreamObserver<GenerateResponse> out;
    private final CallReset reset;
    private final Tokenizer tokenizer;
    private final int[] promptIds;
    private final boolean trace;
    private final String requestId;
    private final long maxBacklogBytes;
    /** Serialized bytes of messages sent while the call was not ready; guarded by {@link #out}. */
    private long backlog;
    /** Past the backlog bound: the call has ended and nothing more is sent; guarded by {@link #out}. */
    private boolean stalled;
    /** Set under {@link #out} before the first token can come. */
    private GenerationService.Handle handle;
    /** Token messages sent so far (engine thread only). */
    private int tokensSent;
    /** Prompt tokens served from the prefix cache (Usage.cached_prompt_tokens), known at the first admission. */
    private volatile int cachedPromptTokens;

    /** Call in the service method, before it returns (gRPC takes the on-ready handler only then). */
    GenerateStream(ServerCallStreamObserver<GenerateResponse> out, CallReset reset, Tokenizer tokenizer, int[] promptIds,
                   boolean trace, String requestId, long maxBacklogBytes) {
        this.out = out;
        this.reset = reset;
        this.maxBacklogBytes = maxBacklogBytes;
        // Ready again: the transport took what was queued, so the client is reading.
        out.setOnReadyHandler(() -> {
            synchronized (out) {
                backlog = 0;
            }
        });
        this.requestId = requestId;
        this.tokenizer = tokenizer;
        this.promptIds = promptIds;
        this.trace = trace;
    }

    /** The sequence to cancel when the client does not read; set under {@code synchronized (out)}. */
    void attach(GenerationService.Handle h) {
        handle = h;
    }

    @Override
    public void onAdmitted(int cached) {
        cachedPromptTokens = cached;
    }

    @Override
    public void onToken(int token, String textDelta, TokenLogprobs lp) {
        GenerateResponse.Builder b = GenerateResponse.newBuilder().addTokenIds(token).setText(textDelta);
        if (lp != null) {
            TokenLogprob.Builder t = TokenLogprob.newBuilder().setTokenId(token).setLogprob(lp.logprob())
                    .setTokenBytes(bytes(token));
            for (int i = 0; i < lp.topIds().length; i++) {
                t.addTopLogprobs(TopLogprob.newBuilder().setTokenId(lp.topIds()[i]).setLogprob(lp.topLogprobs()[i])
                        .setTokenBytes(bytes(lp.topIds()[i])));
            }
            b.addLogprobs(t);
        }
        tokensSent++;
        send(b.build(), false);
    }

    /**
     * gateway.proto's token_bytes: the token's own bytes, so a part of a character split across tokens is that
     * part (its decoded text would be U+FFFD), a SentencePiece word's leading space is there as in the text
     * ({@code Tokenizer#tokenBytes}), and nothing for a special token such as EOS.
     */
    private ByteString bytes(int token) {
        return ByteString.copyFrom(tokenizer.tokenBytes(token));
    }

    @Override
    public void onComplete(Completion c) {
        send(GenerateResponse.newBuilder().setText(c.restOfText())
                .setFinishReason(c.reason().equals("stop") ? FinishReason.FINISH_REASON_STOP : FinishReason.FINISH_REASON_LENGTH)
                .setUsage(Usage.newBuilder().setPromptTokens(c.promptTokens()).setCompletionTokens(c.generatedIds().length)
                        .setCachedPromptTokens(c.cachedPromptTokens()))
                .setTrace(new TraceMessage(promptIds, trace, c.result(), c.dispatch()).toProto()).build(), true);
        synchronized (out) {
            if (!out.isCancelled() && !stalled) {
                out.onCompleted();
            }
        }
    }

    @Override
    public void onError(Throwable error, String restOfText) {
        io.grpc.Status status = GatewayStatus.of(error, requestId);
        synchronized (out) {
            if (out.isCancelled() || stalled) {
                return;
            }
            if (tokensSent == 0) {
                out.onError(GatewayStatus.ending(status, requestId));
                return;
            }
            // Stopped by the server's shutdown (not failed): CANCELLED, with the retryable UNAVAILABLE as the error.
            FinishReason reason = error instanceof DrainExpiredException ? FinishReason.FINISH_REASON_CANCELLED
                    : FinishReason.FINISH_REASON_ERROR;
            // The text held back so far (a partial stop-string match) ends the text, as on a completed call:
            // concatenating every message's text still gives all the text of the tokens sent.
            out.onNext(GenerateResponse.newBuilder().setText(restOfText).setFinishReason(reason)
                    .setError(com.google.rpc.Status.newBuilder().setCode(status.getCode().value())
                            .setMessage(status.getDescription() == null ? "" : status.getDescription()))
                    .setUsage(Usage.newBuilder().setPromptTokens(promptIds.length).setCompletionTokens(tokensSent)
                            .setCachedPromptTokens(cachedPromptTokens))
                    // input_ids, as on every last message; the engine's result (logits, routes) is gone with it.
                    .setTrace(new TraceMessage(promptIds, false, null, null).toProto())
                    .build());
            out.onCompleted();
        }
    }

    private void send(GenerateResponse r, boolean closing) {
        synchronized (out) {
            if (out.isCancelled() || stalled) {
                return;
            }
            if (!closing && !out.isReady()) {
                backlog += r.getSerializedSize();
                if (backlog > maxBacklogBytes) {
                    stalled = true;
                    // Never blocks: the sequence is dropped at the next step boundary, counted apart from the
                    // clients that cancelled (the client sees only CANCELLED: the log says why).
                    String why = "the client did not read the stream: more than " + maxBacklogBytes
                            + " bytes of messages waited for it (request " + requestId + ")";
                    // Logged before it is counted: whoever sees the count sees the line too.
                    log.info("Generate {} ended, its stream reset: {}", requestId, why);
                    handle.cancelStalled();
                    if (!reset.reset(why)) {
                        out.onError(GatewayStatus.ending(io.grpc.Status.RESOURCE_EXHAUSTED.withDescription(why),
                                requestId));
                    }
                    return;
                }
            }
            out.onNext(r);
        }
    }
}
