package io.moemesh.expert.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moemesh.expert.support.BatchClient;
import io.moemesh.expert.support.Requests;
import io.moemesh.expert.support.TestCertificates;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.LoadAssignmentRequest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * uint32 fields of the expert API arrive in Java as ints, negative from 2^31 on: they are read unsigned, refused
 * with INVALID_ARGUMENT naming the field and the value as sent, and never index anything.
 */
class Uint32FieldsTest extends PlacedInstanceTestBase {

    @ParameterizedTest(name = "layer {0} expert {1}")
    @CsvSource({
        "0, 13, 'experts[1]: layer 0 expert 13 does not exist'",
        "-1, 0, 'experts[1]: layer 4294967295 does not exist'",
        "0, -2147483648, 'experts[1]: layer 0 expert 2147483648 does not exist'",
    })
    void loadAssignment_outOfRangeLayerOrExpert_isInvalidArgument_namingTheEntry(int layer, int expert, String message)
            throws InterruptedException {
        // LoadAssignment is the placer's call: another identity would get PERMISSION_DENIED before any check
        ManagedChannel placer = TestCertificates.channel(grpcServer.port(), "placer");
        var stub = ExpertServiceGrpc.newBlockingStub(placer);
        try {
            assertThatThrownBy(() -> stub.loadAssignment(LoadAssignmentRequest.newBuilder().setInstanceId("expert-0")
                    .setEpoch(EPOCH + 1).addExperts(ExpertRef.newBuilder().setLayer(0).setExpert(0))
                    .addExperts(ExpertRef.newBuilder().setLayer(layer).setExpert(expert)).build()))
                    .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                        assertThat(e.getStatus().getDescription()).startsWith(message);
                    });
        } finally {
            placer.shutdownNow().awaitTermination(5, java.util.concurrent.TimeUnit.SECONDS);
        }
    }

    @Test
    void expertBatch_countOrLayerOf2To31OrMore_isInvalidArgument_readUnsigned() {
        try (BatchClient stream = new BatchClient(channel)) {
            ExpertBatchResponse count = stream.call(Requests.single(0, 0, EPOCH, H).setTokenExpertCounts(0, -1).build());
            assertThat(Status.fromCodeValue(count.getStatus().getCode()).getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(count.getStatus().getMessage())
                    .isEqualTo("token_expert_counts[0] is 4294967295, more than a message can carry experts for");
            ExpertBatchResponse layer = stream.call(Requests.single(0, 0, EPOCH, H).setLayer(Integer.MIN_VALUE).build());
            assertThat(Status.fromCodeValue(layer.getStatus().getCode()).getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(layer.getStatus().getMessage()).startsWith("layer 2147483648 does not exist");
            assertThat(stream.call(Requests.single(0, 0, EPOCH, H).build()).getStatus().getCode()).isZero();
        }
    }
}
