package io.moemesh.gateway.grpc;

import io.grpc.stub.ServerCallStreamObserver;
import io.moemesh.gateway.dispatch.LayerDispatchRecord;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.SequenceListener;
import io.moemesh.model.tokenizer.Tokenizer;
import io.moemesh.proto.gateway.v1.FinishReason;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.InstanceDispatch;
import io.moemesh.proto.gateway.v1.LayerDispatch;
import io.moemesh.proto.gateway.v1.LayerRoutes;
import io.moemesh.proto.gateway.v1.PositionRoutes;
import io.moemesh.proto.gateway.v1.TraceInfo;
import io.moemesh.proto.gateway.v1.Usage;
import io.moemesh.service.grpc.TensorCodec;
import java.util.Arrays;
import java.util.List;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

/**
 * Streams one sequence to its gRPC caller: a message per token with the new text (an incomplete UTF-8
 * sequence, shown by the decoder as U+FFFD, is held back so the pieces join to exactly the full decode), then
 * a final message with finish reason, usage and trace. Runs on the engine thread.
 */
final class GenerateStream implements SequenceListener {
    private final ServerCallStreamObserver<GenerateResponse> out;
    private final Tokenizer tokenizer;
    private final int[] promptIds;
    private final boolean trace;
    private final Supplier<List<LayerDispatchRecord>> dispatch;
    private final LongSupplier epoch;
    private int[] generated = new int[16];
    private int count;
    private int sentChars;
    private List<LayerDispatchRecord> prefillDispatch = List.of();

    GenerateStream(ServerCallStreamObserver<GenerateResponse> out, Tokenizer tokenizer, int[] promptIds, boolean trace,
                   Supplier<List<LayerDispatchRecord>> dispatch, LongSupplier epoch) {
        this.out = out;
        this.tokenizer = tokenizer;
        this.promptIds = promptIds;
        this.trace = trace;
        this.dispatch = dispatch;
        this.epoch = epoch;
    }

    @Override
    public void onPrefillComplete() {
        if (trace) {
            prefillDispatch = dispatch.get();
        }
    }

    @Override
    public void onToken(int token) {
        if (count == generated.length) {
            generated = Arrays.copyOf(generated, count * 2);
        }
        generated[count++] = token;
        String text = tokenizer.decode(Arrays.copyOf(generated, count), true);
        String delta = "";
        if (!text.endsWith("\uFFFD") && text.length() > sentChars) {
            delta = text.substring(sentChars);
            sentChars = text.length();
        }
        send(GenerateResponse.newBuilder().addTokenIds(token).setText(delta).build());
    }

    @Override
    public void onFinish(GenerationResult r) {
        String text = tokenizer.decode(r.generatedIds(), true);
        GenerateResponse.Builder last = GenerateResponse.newBuilder()
                .setText(text.length() > sentChars ? text.substring(sentChars) : "")
                .setFinishReason(r.finishReason() == io.moemesh.model.generate.FinishReason.STOP
                        ? FinishReason.FINISH_REASON_STOP : FinishReason.FINISH_REASON_LENGTH)
                .setUsage(Usage.newBuilder().setPromptTokens(promptIds.length).setCompletionTokens(r.generatedIds().length))
                .setTrace(trace(r));
        send(last.build());
        if (!out.isCancelled()) {
            out.onCompleted();
        }
    }

    @Override
    public void onError(Throwable error) {
        if (!out.isCancelled()) {
            out.onError(GatewayStatus.of(error).asRuntimeException());
        }
    }

    private TraceInfo trace(GenerationResult r) {
        TraceInfo.Builder t = TraceInfo.newBuilder();
        for (int id : promptIds) {
            t.addInputIds(id);
        }
        if (!trace) {
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
        if (!out.isCancelled()) {
            out.onNext(r);
        }
    }
}
