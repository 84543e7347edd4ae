package io.moemesh.gateway.grpc;

import io.moemesh.gateway.dispatch.LayerDispatchRecord;
import io.moemesh.gateway.dispatch.PromptDispatch;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.proto.gateway.v1.InstanceDispatch;
import io.moemesh.proto.gateway.v1.LayerDispatch;
import io.moemesh.proto.gateway.v1.LayerRoutes;
import io.moemesh.proto.gateway.v1.PositionRoutes;
import io.moemesh.proto.gateway.v1.TraceInfo;
import io.moemesh.service.grpc.TensorCodec;

/**
 * A request's {@link TraceInfo} (gateway.proto): input_ids always; for a traced request also the last prompt
 * position's logits, the gate's top-k experts with the combine weights applied to them, and where its own prompt
 * rows went ({@link PromptDispatch}) with the placement epoch they were dispatched under.
 *
 * @param promptIds the input ids, BOS included
 * @param traced    whether the request asked for a trace
 * @param result    the engine's result (null when a stop string ended an untraced sequence early, or the engine
 *                  failed after one had ended a traced sequence's text: no logits or routes then)
 * @param dispatch  where its prompt rows went
 */
record TraceMessage(int[] promptIds, boolean traced, GenerationResult result, PromptDispatch dispatch) {

    TraceInfo toProto() {
        TraceInfo.Builder t = TraceInfo.newBuilder();
        for (int id : promptIds) {
            t.addInputIds(id);
        }
        if (!traced) {
            return t.build();
        }
        t.setPlacementEpoch(dispatch.epoch());
        GenerationResult r = result;
        if (r != null && r.lastLogits() != null) {
            t.setLastLogits(TensorCodec.encode(r.lastLogits(), 0, 1, r.lastLogits().length).toBuilder()
                    .clearShape().addShape(r.lastLogits().length));
        }
        if (r != null && r.routerTopk() != null) {
            for (int l = 0; l < r.routerTopk().length; l++) {
                LayerRoutes.Builder lr = LayerRoutes.newBuilder().setLayer(l);
                for (int p = 0; p < r.routerTopk()[l].length; p++) {
                    PositionRoutes.Builder pr = PositionRoutes.newBuilder();
                    for (int e : r.routerTopk()[l][p]) {
                        pr.addExperts(e);
                    }
                    if (r.routerWeights() != null) {
                        for (float w : r.routerWeights()[l][p]) {
                            pr.addWeights(w);
                        }
                    }
                    lr.addPositions(pr);
                }
                t.addRouterTopk(lr);
            }
        }
        for (LayerDispatchRecord rec : dispatch.layers()) {
            LayerDispatch.Builder ld = LayerDispatch.newBuilder().setLayer(rec.layer());
            for (LayerDispatchRecord.InstanceShare s : rec.instances()) {
                ld.addInstances(InstanceDispatch.newBuilder().setInstanceId(s.instanceId()).setTokenCount(s.tokens())
                        .addAllExperts(s.experts()));
            }
            t.addDispatch(ld);
        }
        return t.build();
    }
}
