package io.moemesh.expert.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.CodedOutputStream;
import io.grpc.CallOptions;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.StreamObserver;
import io.moemesh.expert.support.BatchClient;
import io.moemesh.expert.support.Requests;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.common.v1.Tensor;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.service.testing.RawMessages;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * ExpertBatch messages sent gzip-compressed ({@code grpc-encoding: gzip}, which gRPC hands the parser as an
 * inflating stream that does not know its length): a valid one is served; one of a few bytes that claims a field
 * of about 2 GiB ends its stream with INVALID_ARGUMENT (truncated message) without the instance allocating for the
 * claim (which, under {@code -XX:+ExitOnOutOfMemoryError} as deployed, would end the process), and the instance
 * serves the next batch.
 */
class CompressedBatchSocketTest extends PlacedInstanceTestBase {
    private static final MethodDescriptor<byte[], byte[]> BATCH = RawMessages.raw(ExpertServiceGrpc.getExpertBatchMethod());

    /** The one reply (an ExpertBatchResponse) of a gzip stream carrying {@code message}, or the status it ended with. */
    private Object gzipStreamOf(byte[] message) throws Exception {
        CompletableFuture<Object> answer = new CompletableFuture<>();
        StreamObserver<byte[]> requests = ClientCalls.asyncBidiStreamingCall(channel.newCall(BATCH,
                CallOptions.DEFAULT.withCompression("gzip").withDeadlineAfter(30, TimeUnit.SECONDS)),
                new StreamObserver<>() {
                    @Override
                    public void onNext(byte[] reply) {
                        try {
                            answer.complete(ExpertBatchResponse.parseFrom(reply));
                        } catch (IOException e) {
                            answer.completeExceptionally(e);
                        }
                    }

                    @Override
                    public void onError(Throwable t) {
                        answer.complete(Status.fromThrowable(t));
                    }

                    @Override
                    public void onCompleted() {
                        answer.complete(Status.OK);
                    }
                });
        requests.onNext(message);
        requests.onCompleted();
        return answer.get(30, TimeUnit.SECONDS);
    }

    private static byte[] good() {
        return Requests.single(0, 0, EPOCH, H).setBatchId(Requests.nextId()).build().toByteArray();
    }

    /** A valid header, then activations of bf16 data for 2^30 - 16 floats (a 4 GiB array) of which no byte is sent. */
    private static byte[] activationsClaimingFourGiB() throws IOException {
        ExpertBatchRequest header = Requests.single(0, 0, EPOCH, H).clearActivations().build();
        ByteArrayOutputStream tensor = new ByteArrayOutputStream();
        CodedOutputStream t = CodedOutputStream.newInstance(tensor);
        long dataBytes = (1L << 31) - 32;
        t.writeEnum(Tensor.DTYPE_FIELD_NUMBER, DType.DTYPE_BF16_VALUE);
        t.writeInt64(Tensor.SHAPE_FIELD_NUMBER, 1);
        t.writeInt64(Tensor.SHAPE_FIELD_NUMBER, dataBytes / 2);
        t.writeTag(Tensor.DATA_FIELD_NUMBER, 2);
        t.writeUInt64NoTag(dataBytes);
        t.flush();
        ByteArrayOutputStream wire = new ByteArrayOutputStream();
        CodedOutputStream w = CodedOutputStream.newInstance(wire);
        w.writeRawBytes(header.toByteArray());
        w.writeTag(ExpertBatchRequest.ACTIVATIONS_FIELD_NUMBER, 2);
        w.writeUInt64NoTag(tensor.size() + dataBytes);
        w.writeRawBytes(tensor.toByteArray());
        w.flush();
        return wire.toByteArray();
    }

    @Test
    void expertBatch_gzipCompressed_isServed() throws Exception {
        Object answer = gzipStreamOf(good());
        assertThat(answer).isInstanceOf(ExpertBatchResponse.class);
        ExpertBatchResponse r = (ExpertBatchResponse) answer;
        assertThat(r.getStatus().getCode()).as(r.getStatus().getMessage()).isZero();
        assertThat(r.getOutputs().getShapeList()).containsExactly(1L, (long) H);
    }

    @Test
    void expertBatch_gzipMessageClaimingAHugeField_isInvalidArgument_andTheInstanceServesTheNextBatch()
            throws Exception {
        byte[] traceContextClaimingTwoGiB = {0x4A, (byte) 0xF0, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, 0x07};
        for (byte[] hostile : new byte[][] {activationsClaimingFourGiB(), traceContextClaimingTwoGiB}) {
            Object answer = gzipStreamOf(hostile);

            assertThat(answer).isInstanceOf(Status.class);
            Status s = (Status) answer;
            assertThat(s.getCode()).as(String.valueOf(s)).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(s.getDescription()).contains("moemesh.expert.v1.ExpertBatchRequest")
                    .contains("runs past the end of the message (truncated message)");

            Object next = gzipStreamOf(good());
            assertThat(next).isInstanceOf(ExpertBatchResponse.class);
            assertThat(((ExpertBatchResponse) next).getStatus().getCode()).isZero();
        }
        try (BatchClient plain = new BatchClient(channel)) {
            ExpertBatchResponse r = plain.call(Requests.single(0, 0, EPOCH, H).setBatchId(Requests.nextId()).build());
            assertThat(r.getStatus().getCode()).as(r.getStatus().getMessage()).isZero();
        }
    }
}
