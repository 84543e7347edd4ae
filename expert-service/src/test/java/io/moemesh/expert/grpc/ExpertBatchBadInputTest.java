package io.moemesh.expert.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.ErrorInfo;
import io.grpc.Status;
import io.moemesh.expert.support.BatchClient;
import io.moemesh.expert.support.Requests;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.common.v1.Tensor;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Deliverable 5: every malformed or unservable ExpertBatch message is answered on the SAME stream with a status
 * saying what is wrong, the next good message on that stream still succeeds, and a second stream used at the
 * same time never notices.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ExpertBatchBadInputTest extends PlacedInstanceTestBase {
    private BatchClient stream;
    private BatchClient other;

    @BeforeAll
    void openStreams() {
        stream = new BatchClient(channel);
        other = new BatchClient(channel);
    }

    @AfterAll
    void closeStreams() {
        stream.close();
        other.close();
    }

    /** Layer 0 expert 0 is held by expert-0. */
    private static ExpertBatchRequest.Builder good() {
        return Requests.single(0, 0, EPOCH, H);
    }

    private static Tensor.Builder activations() {
        return good().getActivations().toBuilder();
    }

    private ExpertBatchResponse assertRefused(ExpertBatchRequest.Builder bad, Status.Code code, String message)
            throws Exception {
        CompletableFuture<ExpertBatchResponse> concurrent = other.send(good().build());
        ExpertBatchRequest request = bad.setBatchId(Requests.nextId()).build();
        ExpertBatchResponse r = stream.call(request);
        assertThat(r.getBatchId()).isEqualTo(request.getBatchId());
        assertThat(r.getLayer()).isEqualTo(request.getLayer());
        assertThat(Status.fromCodeValue(r.getStatus().getCode()).getCode()).as(r.getStatus().getMessage()).isEqualTo(code);
        assertThat(r.getStatus().getMessage()).contains(message);
        assertThat(r.hasOutputs()).isFalse();
        assertThat(r.getServingEpoch()).isEqualTo(EPOCH);

        ExpertBatchResponse next = stream.call(good().build());
        assertThat(next.getStatus().getCode()).as("the stream goes on: " + next.getStatus().getMessage()).isZero();
        assertThat(next.getOutputs().getShapeList()).containsExactly(1L, (long) H);
        assertThat(concurrent.get(30, TimeUnit.SECONDS).getStatus().getCode()).as("the other stream").isZero();
        assertThat(stream.isEnded()).isFalse();
        return r;
    }

    private static ErrorInfo errorInfo(ExpertBatchResponse r) throws InvalidProtocolBufferException {
        assertThat(r.getStatus().getDetailsCount()).isEqualTo(1);
        return r.getStatus().getDetails(0).unpack(ErrorInfo.class);
    }

    @Test
    void expertBatch_unknownLayer_isInvalidArgument_andStreamStaysOpen() throws Exception {
        assertRefused(good().setLayer(CONFIG.numLayers()), Status.Code.INVALID_ARGUMENT, "layer 4 does not exist");
    }

    @Test
    void expertBatch_hiddenSizeMismatch_isInvalidArgument_andStreamStaysOpen() throws Exception {
        assertRefused(good().setActivations(activations().setShape(1, H / 2).setData(ByteString.copyFrom(new byte[H * 2]))),
                Status.Code.INVALID_ARGUMENT, "shape [1, 32] does not match [1, 64]");
    }

    @Test
    void expertBatch_activationsNotAMatrix_isInvalidArgument_andStreamStaysOpen() throws Exception {
        assertRefused(good().setActivations(activations().clearShape().addShape(H)), Status.Code.INVALID_ARGUMENT,
                "activations: shape [64]");
    }

    @Test
    void expertBatch_unsupportedActivationDtype_isInvalidArgument_andStreamStaysOpen() throws Exception {
        assertRefused(good().setActivations(activations().setDtype(DType.DTYPE_I32)), Status.Code.INVALID_ARGUMENT,
                "dtype DTYPE_I32 is not supported");
        assertRefused(good().setActivations(activations().setDtype(DType.DTYPE_UNSPECIFIED)),
                Status.Code.INVALID_ARGUMENT, "dtype DTYPE_UNSPECIFIED is not supported");
    }

    @Test
    void expertBatch_truncatedPayload_isInvalidArgument_andStreamStaysOpen() throws Exception {
        ByteString data = good().getActivations().getData();
        assertRefused(good().setActivations(activations().setData(data.substring(0, data.size() - 3))),
                Status.Code.INVALID_ARGUMENT, "253 bytes of DTYPE_F32 data, expected 256");
    }

    @Test
    void expertBatch_shapeClaimingMoreTokensThanThePayload_isInvalidArgument_withoutAllocatingForTheClaim()
            throws Exception {
        assertRefused(good().setActivations(activations().setShape(0, 1L << 30)).clearTokenExpertCounts(),
                Status.Code.INVALID_ARGUMENT, "shape [1073741824, 64] has more elements than a message can carry");
        assertRefused(good().setActivations(activations().setShape(0, 3)), Status.Code.INVALID_ARGUMENT,
                "256 bytes of DTYPE_F32 data, expected 768");
    }

    @Test
    void expertBatch_zeroTokens_isInvalidArgument_andStreamStaysOpen() throws Exception {
        assertRefused(good().setActivations(activations().setShape(0, 0).setData(ByteString.EMPTY)),
                Status.Code.INVALID_ARGUMENT, "num_tokens must be >= 1");
    }

    @Test
    void expertBatch_countsNotSummingToExperts_isInvalidArgument_andStreamStaysOpen() throws Exception {
        assertRefused(good().setTokenExpertCounts(0, 2), Status.Code.INVALID_ARGUMENT,
                "token_expert_counts sum to 2 but experts has 1 entries");
    }

    @Test
    void expertBatch_countsForAnotherNumberOfTokens_isInvalidArgument_andStreamStaysOpen() throws Exception {
        assertRefused(good().addTokenExpertCounts(0), Status.Code.INVALID_ARGUMENT,
                "token_expert_counts has 2 entries for 1 tokens");
    }

    @Test
    void expertBatch_weightsLengthNotExpertsLength_isInvalidArgument_andStreamStaysOpen() throws Exception {
        assertRefused(good().addWeights(0.5f), Status.Code.INVALID_ARGUMENT, "weights has 2 entries but experts has 1");
    }

    @Test
    void expertBatch_nonFiniteWeight_isInvalidArgument_andStreamStaysOpen() throws Exception {
        assertRefused(good().setWeights(0, Float.NaN), Status.Code.INVALID_ARGUMENT, "weights[0] is NaN");
        assertRefused(good().setWeights(0, Float.NEGATIVE_INFINITY), Status.Code.INVALID_ARGUMENT,
                "weights[0] is -Infinity");
    }

    @Test
    void expertBatch_expertIdOutOfRange_isInvalidArgument_andStreamStaysOpen() throws Exception {
        int beyondShared = CONFIG.numExperts() + 1;
        assertRefused(good().setExperts(0, beyondShared), Status.Code.INVALID_ARGUMENT,
                "experts[0]: layer 0 expert 13 does not exist");
        assertRefused(good().setExperts(0, -1), Status.Code.INVALID_ARGUMENT, "expert 4294967295 does not exist");
    }

    /**
     * One token listing expert 0 again and again (the audit's 2.5 MB message listed it half a million times, which
     * made the cpu backend gather that many rows: 16 GB at hidden 4096, on the event loop) is refused outright.
     */
    @Test
    void expertBatch_expertListedTwiceForOneToken_isInvalidArgument_andTheInstanceServesTheNextBatch() throws Exception {
        int pairs = 10_000;
        ExpertBatchRequest.Builder repeated = good().setTokenExpertCounts(0, pairs).clearExperts().clearWeights();
        for (int i = 0; i < pairs; i++) {
            repeated.addExperts(0).addWeights(1f);
        }
        assertRefused(repeated, Status.Code.INVALID_ARGUMENT, "experts[1]: expert 0 is listed twice for token 0");
    }

    @Test
    void expertBatch_unsupportedOutputDtype_isInvalidArgument_andStreamStaysOpen() throws Exception {
        assertRefused(good().setOutputDtype(DType.DTYPE_F16), Status.Code.INVALID_ARGUMENT, "output_dtype DTYPE_F16");
    }

    @Test
    void expertBatch_expertNotHeld_isFailedPrecondition_namingLayerAndExpert_andStreamStaysOpen() throws Exception {
        ExpertBatchResponse r = assertRefused(Requests.single(2, 1, EPOCH, H), Status.Code.FAILED_PRECONDITION,
                "layer 2 expert 1 is not held by expert-0 (epoch 3)");
        ErrorInfo info = errorInfo(r);
        assertThat(info.getReason()).isEqualTo("EXPERT_NOT_HELD");
        assertThat(info.getMetadataMap()).containsEntry("layer", "2").containsEntry("expert", "1")
                .containsEntry("serving_epoch", "3");
    }

    @Test
    void expertBatch_sharedExpertOfALayerHeldElsewhere_isFailedPrecondition_andStreamStaysOpen() throws Exception {
        assertRefused(Requests.single(1, CONFIG.numExperts(), EPOCH, H), Status.Code.FAILED_PRECONDITION,
                "layer 1 expert 12 is not held by expert-0");
    }

    @Test
    void expertBatch_staleEpoch_isFailedPrecondition_andStreamStaysOpen() throws Exception {
        ExpertBatchResponse r = assertRefused(good().setPlacementEpoch(EPOCH - 1), Status.Code.FAILED_PRECONDITION,
                "stale epoch 2, serving 3");
        assertThat(errorInfo(r).getReason()).isEqualTo("STALE_EPOCH");
    }

    @Test
    void expertBatch_epochNewerThanServed_isFailedPrecondition_andStreamStaysOpen() throws Exception {
        ExpertBatchResponse r = assertRefused(good().setPlacementEpoch(EPOCH + 1), Status.Code.FAILED_PRECONDITION,
                "epoch 4 is not loaded yet, serving 3");
        assertThat(errorInfo(r).getReason()).isEqualTo("EPOCH_NOT_LOADED");
    }

    @Test
    void expertBatch_epochZero_skipsTheEpochCheck() {
        assertThat(stream.call(good().setPlacementEpoch(0).build()).getStatus().getCode()).isZero();
    }

    @Test
    @Order(Integer.MAX_VALUE)
    void expertBatch_afterAllTheBadMessages_bothStreamsAreStillOpen_andCompleteCleanly() throws Exception {
        assertThat(stream.call(good().build()).getStatus().getCode()).isZero();
        assertThat(stream.isEnded()).isFalse();
        assertThat(other.isEnded()).isFalse();
        assertThat(stream.finish(Duration.ofSeconds(10))).isNull();
        assertThat(other.finish(Duration.ofSeconds(10))).isNull();
    }
}
