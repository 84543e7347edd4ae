package io.moemesh.expert.support;

import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.service.grpc.TensorCodec;
import java.util.concurrent.atomic.AtomicLong;

/** ExpertBatchRequest builders for tests. */
public final class Requests {
    private static final AtomicLong IDS = new AtomicLong(1);

    private Requests() {
    }

    public static long nextId() {
        return IDS.getAndIncrement();
    }

    public static ExpertBatchRequest.Builder of(Routing r, long epoch, int hidden) {
        ExpertBatchRequest.Builder b = ExpertBatchRequest.newBuilder().setBatchId(nextId()).setPlacementEpoch(epoch)
                .setLayer(r.layer()).setActivations(TensorCodec.encode(r.x(), 0, r.tokens(), hidden, DType.DTYPE_F32));
        for (int c : r.counts()) {
            b.addTokenExpertCounts(c);
        }
        for (int i = 0; i < r.experts().length; i++) {
            b.addExperts(r.experts()[i]).addWeights(r.weights()[i]);
        }
        return b;
    }

    /** One token to one expert with weight 1. */
    public static ExpertBatchRequest.Builder single(int layer, int expert, long epoch, int hidden) {
        float[] x = new float[hidden];
        for (int i = 0; i < hidden; i++) {
            x[i] = (i % 7 - 3) * 0.25f;
        }
        return ExpertBatchRequest.newBuilder().setBatchId(nextId()).setPlacementEpoch(epoch).setLayer(layer)
                .setActivations(TensorCodec.encode(x, 0, 1, hidden)).addTokenExpertCounts(1).addExperts(expert)
                .addWeights(1f);
    }

    public static float[] outputs(io.moemesh.proto.expert.v1.ExpertBatchResponse r, int tokens, int hidden) {
        float[] out = new float[tokens * hidden];
        TensorCodec.decode(r.getOutputs(), "outputs", tokens, hidden, out, 0);
        return out;
    }
}
