package io.moemesh.expert.grpc;

import com.google.protobuf.Any;
import com.google.rpc.ErrorInfo;
import io.moemesh.expert.assignment.EpochNotServedException;
import io.moemesh.expert.assignment.EpochNumberRefusedException;
import io.moemesh.expert.assignment.ExpertNotHeldException;
import io.moemesh.expert.backend.BatchInput;
import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.batch.BatchRequest;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.service.grpc.StatusMapping;
import io.moemesh.service.grpc.TensorArrayPool;
import io.moemesh.service.grpc.TensorMessage;
import java.util.Arrays;
import java.util.List;

/** proto ⇄ domain for the expert API, and the per-message error status (StatusMapping plus ErrorInfo). */
final class ProtoMapping {
    static final String ERROR_DOMAIN = "expert.moemesh.io";
    /**
     * The ErrorInfo reason of a LoadAssignment refused for its epoch's number (expert.proto, LoadAssignmentRequest):
     * the router reads it to tell such a refusal, which says nothing of the instance, from one about the instance.
     */
    static final String EPOCH_NUMBER_REFUSED = "EPOCH_NUMBER_REFUSED";

    private ProtoMapping() {
    }

    /**
     * Decodes the wire form (the activations were decoded from gRPC's buffers by the marshaller, when their byte
     * length matched their shape and dtype); IllegalArgumentException says what is malformed.
     */
    static BatchRequest toDomain(TensorMessage<ExpertBatchRequest> message, int hidden) {
        ExpertBatchRequest req = message.header();
        long[] shape = message.shape();
        int rows = message.rows();
        if (shape.length == 2 && shape[0] < 1) {
            throw new IllegalArgumentException("activations: num_tokens must be >= 1, got shape " + Arrays.toString(shape));
        }
        // The marshaller sized the array from the payload, not from the declared shape alone: a lying shape
        // cannot make us allocate more than the message carries.
        if (shape.length == 2 && (double) shape[0] * shape[1] > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("activations: shape " + Arrays.toString(shape)
                    + " has more elements than a message can carry (truncated or mislabelled payload)");
        }
        float[] x = message.floats("activations", rows, hidden);
        if (req.getOutputDtype() != DType.DTYPE_UNSPECIFIED && req.getOutputDtype() != DType.DTYPE_F32
                && req.getOutputDtype() != DType.DTYPE_BF16) {
            throw new IllegalArgumentException("output_dtype " + req.getOutputDtype()
                    + " is not supported (DTYPE_F32, or DTYPE_BF16 as a lossy option)");
        }
        // uint32 on the wire: Java reads values >= 2^31 as negative ints, so they are checked as unsigned here.
        int[] counts = new int[req.getTokenExpertCountsCount()];
        for (int i = 0; i < counts.length; i++) {
            long c = Integer.toUnsignedLong(req.getTokenExpertCounts(i));
            if (c > Integer.MAX_VALUE) {
                // Larger than any message can carry experts for; smaller mismatches get BatchProcessor's sum check.
                throw new IllegalArgumentException("token_expert_counts[" + i + "] is " + c
                        + ", more than a message can carry experts for");
            }
            counts[i] = (int) c;
        }
        int[] experts = new int[req.getExpertsCount()];
        for (int i = 0; i < experts.length; i++) {
            experts[i] = req.getExperts(i);
        }
        float[] weights = new float[req.getWeightsCount()];
        for (int i = 0; i < weights.length; i++) {
            weights[i] = req.getWeights(i);
        }
        // The outputs go to a reused array that the stream gives back once they are sent (BatchStream).
        return new BatchRequest(req.getPlacementEpoch(), new BatchInput(req.getLayer(), rows, x, counts, experts, weights),
                TensorArrayPool.shared().take(rows * hidden));
    }

    static DType outputDtype(ExpertBatchRequest req) {
        return req.getOutputDtype() == DType.DTYPE_BF16 ? DType.DTYPE_BF16 : DType.DTYPE_F32;
    }

    /**
     * The status of one failed message or call: code and text from StatusMapping, plus ErrorInfo for the caller (the
     * gateway for ExpertBatch, the router for LoadAssignment).
     */
    static com.google.rpc.Status toRpcStatus(Throwable t) {
        com.google.rpc.Status.Builder s = StatusMapping.toRpcStatus(t).toBuilder();
        if (t instanceof ExpertNotHeldException e) {
            s.addDetails(Any.pack(ErrorInfo.newBuilder().setReason("EXPERT_NOT_HELD").setDomain(ERROR_DOMAIN)
                    .putMetadata("layer", Integer.toString(e.layer()))
                    .putMetadata("expert", Integer.toString(e.expert()))
                    .putMetadata("serving_epoch", Long.toUnsignedString(e.servingEpoch())).build()));
        } else if (t instanceof EpochNotServedException e) {
            s.addDetails(Any.pack(ErrorInfo.newBuilder().setReason(e.stale() ? "STALE_EPOCH" : "EPOCH_NOT_LOADED")
                    .setDomain(ERROR_DOMAIN)
                    .putMetadata("serving_epoch", Long.toUnsignedString(e.servingEpoch())).build()));
        } else if (t instanceof EpochNumberRefusedException e) {
            s.addDetails(Any.pack(ErrorInfo.newBuilder().setReason(EPOCH_NUMBER_REFUSED).setDomain(ERROR_DOMAIN)
                    .putMetadata("epoch", Long.toUnsignedString(e.epoch()))
                    .putMetadata("served_epoch", Long.toUnsignedString(e.servedEpoch()))
                    .putMetadata("prepared_epoch", Long.toUnsignedString(e.preparedEpoch())).build()));
        }
        return s.build();
    }

    /**
     * LoadAssignment's experts, each checked against the model (layer and expert are uint32: a value of 2^31 or
     * more is reported unsigned); the IllegalArgumentException names the entry, e.g. "experts[3]: layer 9 ...".
     */
    static List<ExpertKey> toKeys(List<ExpertRef> refs, ExpertModel model) {
        List<ExpertKey> keys = new java.util.ArrayList<>(refs.size());
        for (int i = 0; i < refs.size(); i++) {
            try {
                keys.add(model.key(refs.get(i).getLayer(), refs.get(i).getExpert()));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("experts[" + i + "]: " + e.getMessage(), e);
            }
        }
        return keys;
    }

    /** Prefetch hints as (layer, expert); out-of-range values (uint32 read as negative ints) are ignored hints. */
    static int[][] toPairs(List<ExpertRef> refs) {
        int[][] out = new int[refs.size()][];
        for (int i = 0; i < out.length; i++) {
            out[i] = new int[] {refs.get(i).getLayer(), refs.get(i).getExpert()};
        }
        return out;
    }

    static ExpertRef toRef(ExpertKey k) {
        return ExpertRef.newBuilder().setLayer(k.layer()).setExpert(k.expert()).build();
    }
}
