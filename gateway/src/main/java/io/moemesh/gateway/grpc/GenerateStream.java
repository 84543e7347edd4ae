package io.moemesh.gateway.grpc;

import com.google.protobuf.ByteString;
import io.grpc.stub.ServerCallStreamObserver;
import io.moemesh.gateway.dispatch.LayerDispatchRecord;
import io.moemesh.gateway.serving.CompletionSink;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.TokenLogprobs;
import io.moemesh.model.tokenizer.Tokenizer;
import io.moemesh.proto.gateway.v1.FinishReason;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.InstanceDispatch;
import io.moemesh.proto.gateway.v1.LayerDispatch;
import io.moemesh.proto.gateway.v1.LayerRoutes;
import io.moemesh.proto.gateway.v1.PositionRoutes;
import io.moemesh.proto.gateway.v1.TokenLogprob;
import io.moemesh.proto.gateway.v1.TopLogprob;
import io.moemesh.proto.gateway.v1.TraceInfo;
import io.moemesh.proto.gateway.v1.Usage;
import io.moemesh.service.grpc.TensorCodec;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

/**
 * Streams one request to its gRPC caller: a message per token with the text it makes safe to send, then a
 * final message with finish reason, usage and trace (input_ids always; logits, routes and dispatch when the
 * request asked for a trace). Runs on the engine thread. A failure before the first token ends the call with its
 * status; after tokens were streamed it ends with a final message carrying FINISH_REASON_ERROR and {@code error}
 * (the status as google.rpc.Status) and the call completes OK, as gateway.proto promises: the caller keeps the
 * tokens it got and learns why there are no more.
 */
final class GenerateStream implements CompletionSink {
    private final ServerCallStreamObserver<GenerateResponse> out;
    private final Tokenizer tokenizer;
    private final int[] promptIds;
    private final boolean trace;
    private final Supplier<List<LayerDispatchRecord>> dispatch;
    private final LongSupplier epoch;
    private final String requestId;
    private List<LayerDispatchRecord> prefillDispatch = List.of();
    /** Token messages sent so far (engine thread only). */
    private int tokensSent;
    /** Prompt tokens served from the prefix cache (Usage.cached_prompt_tokens), known at the first admission. */
    private volatile int cachedPromptTokens;

    GenerateStream(ServerCallStreamObserver<GenerateResponse> out, Tokenizer tokenizer, int[] promptIds, boolean trace,
                   Supplier<List<LayerDispatchRecord>> dispatch, LongSupplier epoch, String requestId) {
        this.out = out;
        this.requestId = requestId;
        this.tokenizer = tokenizer;
        this.promptIds = promptIds;
        this.trace = trace;
        this.dispatch = dispatch;
        this.epoch = epoch;
    }

    @Override
    public void onAdmitted(int cached) {
        cachedPromptTokens = cached;
    }

    @Override
    public void onToken(int token, String textDelta, TokenLogprobs lp) {
        if (trace && prefillDispatch.isEmpty()) {
            // The first token follows the prompt's last prefill step: that is where its tokens went.
            prefillDispatch = dispatch.get();
        }
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
        send(b.build());
    }

    private ByteString bytes(int token) {
        return ByteString.copyFrom(tokenizer.decode(new int[] {token}, false), StandardCharsets.UTF_8);
    }

    @Override
    public void onComplete(Completion c) {
        send(GenerateResponse.newBuilder().setText(c.restOfText())
                .setFinishReason(c.reason().equals("stop") ? FinishReason.FINISH_REASON_STOP : FinishReason.FINISH_REASON_LENGTH)
                .setUsage(Usage.newBuilder().setPromptTokens(c.promptTokens()).setCompletionTokens(c.generatedIds().length)
                        .setCachedPromptTokens(c.cachedPromptTokens()))
                .setTrace(trace(c.result())).build());
        synchronized (out) {
            if (!out.isCancelled()) {
                out.onCompleted();
            }
        }
    }

    @Override
    public void onError(Throwable error) {
        io.grpc.Status status = GatewayStatus.of(error, requestId);
        synchronized (out) {
            if (out.isCancelled()) {
                return;
            }
            if (tokensSent == 0) {
                out.onError(status.asRuntimeException());
                return;
            }
            out.onNext(GenerateResponse.newBuilder().setFinishReason(FinishReason.FINISH_REASON_ERROR)
                    .setError(com.google.rpc.Status.newBuilder().setCode(status.getCode().value())
                            .setMessage(status.getDescription() == null ? "" : status.getDescription()))
                    .setUsage(Usage.newBuilder().setPromptTokens(promptIds.length).setCompletionTokens(tokensSent)
                            .setCachedPromptTokens(cachedPromptTokens))
                    .build());
            out.onCompleted();
        }
    }

    private TraceInfo trace(GenerationResult r) {
        TraceInfo.Builder t = TraceInfo.newBuilder();
        for (int id : promptIds) {
            t.addInputIds(id);
        }
        if (!trace || r == null) {
            return t.build();
        }
        t.setPlacementEpoch(epoch.getAsLong());
        if (r.lastLogits() != null) {
            t.setLastLogits(TensorCodec.encode(r.lastLogits(), 0, 1, r.lastLogits().length).toBuilder()
                    .clearShape().addShape(r.lastLogits().length));
        }
        if (r.routerTopk() != null) {
            for (int l = 0; l < r.routerTopk().length; l++) {
                LayerRoutes.Builder lr = LayerRoutes.newBuilder().setLayer(l);
                for (int[] pos : r.routerTopk()[l]) {
                    PositionRoutes.Builder pr = PositionRoutes.newBuilder();
                    for (int e : pos) {
                        pr.addExperts(e);
                    }
                    lr.addPositions(pr);
                }
                t.addRouterTopk(lr);
            }
        }
        for (LayerDispatchRecord rec : prefillDispatch) {
            LayerDispatch.Builder ld = LayerDispatch.newBuilder().setLayer(rec.layer());
            for (LayerDispatchRecord.InstanceShare s : rec.instances()) {
                ld.addInstances(InstanceDispatch.newBuilder().setInstanceId(s.instanceId()).setTokenCount(s.tokens())
                        .addAllExperts(s.experts()));
            }
            t.addDispatch(ld);
        }
        return t.build();
    }

    private void send(GenerateResponse r) {
        synchronized (out) {
            if (!out.isCancelled()) {
                out.onNext(r);
            }
        }
    }
}
