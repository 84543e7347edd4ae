package io.moemesh.service.expert;

import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.service.grpc.TensorMessage;
import io.moemesh.service.grpc.TensorMessageMarshaller;

/**
 * {@code moemesh.expert.v1.ExpertService/ExpertBatch} with zero-copy marshallers ({@link TensorMessageMarshaller}):
 * the same method and wire format as the generated descriptor, the activations and outputs held as float arrays
 * instead of {@code Tensor.data} byte strings. The gateway's client calls it; the expert-service serves it.
 */
public final class ExpertBatchWire {
    public static final TensorMessageMarshaller<ExpertBatchRequest> REQUESTS =
            new TensorMessageMarshaller<>(ExpertBatchRequest.getDefaultInstance(), ExpertBatchRequest.ACTIVATIONS_FIELD_NUMBER);
    public static final TensorMessageMarshaller<ExpertBatchResponse> RESPONSES =
            new TensorMessageMarshaller<>(ExpertBatchResponse.getDefaultInstance(), ExpertBatchResponse.OUTPUTS_FIELD_NUMBER);
    public static final MethodDescriptor<TensorMessage<ExpertBatchRequest>, TensorMessage<ExpertBatchResponse>> METHOD =
            ExpertServiceGrpc.getExpertBatchMethod().toBuilder(REQUESTS, RESPONSES).build();

    /**
     * The call header naming the caller's shared-memory arena (an absolute path), and the instance's answer in its
     * response headers: {@link #ARENA_MAPPED} or {@code "refused: <why>"} (expert.proto, ExpertBatch).
     */
    public static final Metadata.Key<String> ARENA_HEADER =
            Metadata.Key.of("moemesh-tensor-arena", Metadata.ASCII_STRING_MARSHALLER);
    public static final String ARENA_MAPPED = "mapped";

    private ExpertBatchWire() {
    }
}
