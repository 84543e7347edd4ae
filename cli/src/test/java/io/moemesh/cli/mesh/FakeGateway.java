package io.moemesh.cli.mesh;

import com.google.rpc.Code;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.moemesh.model.MoeModel;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.Generator;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.proto.gateway.v1.FinishReason;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
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
import java.util.OptionalLong;
import java.util.TreeSet;

/**
 * A stand-in for the gateway's Generate in CLI tests: the reference engine in-process, streamed the way the
 * contract says (first message with request id, one message per token with its text delta, a final message
 * with finish reason, usage and trace). Prompts starting with "fail:CODE" end with that status before any
 * token; "late:CODE" streams one token, then a final FINISH_REASON_ERROR message carrying CODE; "drain:CODE" streams
 * one token, then a final FINISH_REASON_CANCELLED message carrying CODE (a shutting-down gateway's drain ended).
 */
public final class FakeGateway extends GatewayServiceGrpc.GatewayServiceImplBase {
    private final MoeModel model;

    public FakeGateway(MoeModel model) {
        this.model = model;
    }

    @Override
    public void generate(GenerateRequest req, StreamObserver<GenerateResponse> out) {
        String prompt = req.getPrompt();
        if (prompt.startsWith("fail:")) {
            out.onError(Status.fromCode(Status.Code.valueOf(prompt.substring(5))).withDescription("scripted failure of "
                    + prompt).asRuntimeException());
            return;
        }
        int[] ids = model.encodePrompt(prompt);
        out.onNext(GenerateResponse.newBuilder().setRequestId("fake-1").setPromptTokens(ids.length).build());
        if (prompt.startsWith("drain:")) {
            // what a shutting-down gateway sends when its drain grace ends after tokens were streamed
            out.onNext(GenerateResponse.newBuilder().addTokenIds(ids[1]).setText("x").build());
            out.onNext(GenerateResponse.newBuilder().setFinishReason(FinishReason.FINISH_REASON_CANCELLED)
                    .setError(com.google.rpc.Status.newBuilder().setCode(Code.valueOf(prompt.substring(6)).getNumber())
                            .setMessage("the gateway is shutting down")).build());
            out.onCompleted();
            return;
        }
        if (prompt.startsWith("late:")) {
            out.onNext(GenerateResponse.newBuilder().addTokenIds(ids[1]).setText("x").build());
            out.onNext(GenerateResponse.newBuilder().setFinishReason(FinishReason.FINISH_REASON_ERROR)
                    .setError(com.google.rpc.Status.newBuilder().setCode(Code.valueOf(prompt.substring(5)).getNumber())
                            .setMessage("no healthy replica of layer 1 expert 3")).build());
            out.onCompleted();
            return;
        }
        var s = req.getSampling();
        SamplingParams params = new SamplingParams(s.getTemperature(), s.getTopP() == 0 ? 1 : s.getTopP(), s.getTopK(),
                s.hasSeed() ? OptionalLong.of(s.getSeed()) : OptionalLong.empty(), s.getMaxTokens(), false);
        int[] generated = new int[params.maxTokens()];
        int[] count = {0};
        int[] printed = {0};
        Generator g = new Generator(model.localEngine(), model.newCache(ids.length + params.maxTokens()), 512);
        GenerationResult r = g.generate(List.of(new GenerationRequest(ids, params, true)), (i, token) -> {
            generated[count[0]++] = token;
            String text = model.tokenizer().decode(Arrays.copyOf(generated, count[0]), true);
            String delta = text.endsWith("\uFFFD") ? "" : text.substring(printed[0]);
            printed[0] += delta.length();
            out.onNext(GenerateResponse.newBuilder().addTokenIds(token).setText(delta).build());
        }).getFirst();
        String text = model.tokenizer().decode(r.generatedIds(), true);
        TraceInfo.Builder trace = TraceInfo.newBuilder();
        Arrays.stream(r.promptIds()).forEach(trace::addInputIds);
        if (req.getTrace()) {
            float[] logits = r.lastLogits();
            trace.setLastLogits(TensorCodec.encode(logits, 0, 1, logits.length).toBuilder().clearShape()
                    .addShape(logits.length));
            for (int l = 0; l < r.routerTopk().length; l++) {
                LayerRoutes.Builder lr = LayerRoutes.newBuilder().setLayer(l);
                TreeSet<Integer> used = new TreeSet<>();
                for (int[] pos : r.routerTopk()[l]) {
                    PositionRoutes.Builder pr = PositionRoutes.newBuilder();
                    Arrays.stream(pos).forEach(e -> {
                        pr.addExperts(e);
                        used.add(e);
                    });
                    lr.addPositions(pr);
                }
                trace.addRouterTopk(lr);
                trace.addDispatch(LayerDispatch.newBuilder().setLayer(l).addInstances(InstanceDispatch.newBuilder()
                        .setInstanceId("local").setTokenCount(ids.length).addAllExperts(used)));
            }
        }
        out.onNext(GenerateResponse.newBuilder().setText(text.substring(printed[0]))
                .setFinishReason(r.finishReason().name().equals("STOP") ? FinishReason.FINISH_REASON_STOP
                        : FinishReason.FINISH_REASON_LENGTH)
                .setUsage(Usage.newBuilder().setPromptTokens(ids.length).setCompletionTokens(r.generatedIds().length))
                .setTrace(trace).build());
        out.onCompleted();
    }
}
