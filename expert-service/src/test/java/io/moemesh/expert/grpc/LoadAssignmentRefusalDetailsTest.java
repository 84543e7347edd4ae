package io.moemesh.expert.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.ErrorInfo;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.moemesh.expert.assignment.Assignment;
import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.backend.NoOpExpertBackend;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.expert.v1.AssignmentStage;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.LoadAssignmentRequest;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A LoadAssignment refused for its epoch's number carries expert.proto's ErrorInfo (domain expert.moemesh.io, reason
 * EPOCH_NUMBER_REFUSED, the refused, served and prepared epochs) whatever its message says: the router tells it by
 * that from a refusal about the instance, which carries none. Over a real socket, on an instance serving epoch 5
 * (layer 0 expert 1) with epoch 7 prepared (layer 0 expert 2), max-epoch-jump 1000.
 */
class LoadAssignmentRefusalDetailsTest {
    private static ExpertModel model;
    private ServedInstance instance;
    private ExpertServiceGrpc.ExpertServiceBlockingStub stub;

    @BeforeAll
    static void open() {
        model = ExpertModel.open(TestModels.dir(TestModels.MIXTRAL)); // 4 layers × 8 experts, hidden 64
    }

    @AfterAll
    static void closeModel() {
        model.close();
    }

    @BeforeEach
    void serve() {
        instance = new ServedInstance(model, new NoOpExpertBackend(model.hiddenSize()), Assignment.of(0, List.of()));
        stub = ExpertServiceGrpc.newBlockingStub(instance.channel);
    }

    @AfterEach
    void stop() throws InterruptedException {
        instance.close();
    }

    private static LoadAssignmentRequest request(String instanceId, AssignmentStage stage, long epoch,
                                                 int... experts) {
        LoadAssignmentRequest.Builder r = LoadAssignmentRequest.newBuilder().setInstanceId(instanceId).setEpoch(epoch)
                .setStage(stage);
        for (int e : experts) {
            r.addExperts(ExpertRef.newBuilder().setLayer(0).setExpert(e));
        }
        return r.build();
    }

    private void servingFiveWithSevenPrepared() {
        stub.loadAssignment(request("expert-0", AssignmentStage.ASSIGNMENT_STAGE_UNSPECIFIED, 5, 1));
        stub.loadAssignment(request("expert-0", AssignmentStage.ASSIGNMENT_STAGE_PREPARE, 7, 2));
    }

    private StatusRuntimeException refused(LoadAssignmentRequest req) {
        StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class,
                () -> stub.withDeadlineAfter(30, TimeUnit.SECONDS).loadAssignment(req));
        assertThat(e).as("refused: " + req).isNotNull();
        assertThat(e.getStatus().getCode()).as(String.valueOf(e.getStatus())).isEqualTo(Status.Code.FAILED_PRECONDITION);
        return e;
    }

    private static List<ErrorInfo> errorInfos(StatusRuntimeException e) throws InvalidProtocolBufferException {
        List<ErrorInfo> out = new ArrayList<>();
        for (Any d : StatusProto.fromThrowable(e).getDetailsList()) {
            if (d.is(ErrorInfo.class)) {
                out.add(d.unpack(ErrorInfo.class));
            }
        }
        return out;
    }

    static Stream<Arguments> epochNumberRefusals() {
        return Stream.of(
                Arguments.of("older than the served epoch", request("expert-0",
                        AssignmentStage.ASSIGNMENT_STAGE_PREPARE, 3, 1), 3L),
                Arguments.of("older than the served epoch, loaded at once", request("expert-0",
                        AssignmentStage.ASSIGNMENT_STAGE_UNSPECIFIED, 4, 1), 4L),
                Arguments.of("older than the prepared epoch", request("expert-0",
                        AssignmentStage.ASSIGNMENT_STAGE_PREPARE, 6, 1), 6L),
                Arguments.of("jumps past max-epoch-jump", request("expert-0",
                        AssignmentStage.ASSIGNMENT_STAGE_PREPARE, 5 + 1001, 1), 1006L),
                Arguments.of("the served epoch with other experts", request("expert-0",
                        AssignmentStage.ASSIGNMENT_STAGE_PREPARE, 5, 3), 5L),
                Arguments.of("the prepared epoch with other experts", request("expert-0",
                        AssignmentStage.ASSIGNMENT_STAGE_PREPARE, 7, 3), 7L));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("epochNumberRefusals")
    void epochNumberRefusal_carriesTheEpochNumberRefusedErrorInfo(String rule, LoadAssignmentRequest req, long epoch)
            throws InvalidProtocolBufferException {
        servingFiveWithSevenPrepared();

        StatusRuntimeException e = refused(req);

        assertThat(errorInfos(e)).singleElement().satisfies(info -> {
            assertThat(info.getDomain()).isEqualTo("expert.moemesh.io");
            assertThat(info.getReason()).isEqualTo("EPOCH_NUMBER_REFUSED");
            assertThat(info.getMetadataMap()).isEqualTo(Map.of("epoch", Long.toString(epoch), "served_epoch", "5",
                    "prepared_epoch", "7"));
        });
        // A refused call changes nothing.
        assertThat(stub.describeInstance(io.moemesh.proto.expert.v1.DescribeInstanceRequest.getDefaultInstance()))
                .satisfies(d -> {
                    assertThat(d.getEpoch()).isEqualTo(5);
                    assertThat(d.getPreparedEpoch()).isEqualTo(7);
                });
    }

    @Test
    void firstEpochNotBelowTwoToThe63_carriesTheEpochNumberRefusedErrorInfo() throws InvalidProtocolBufferException {
        StatusRuntimeException e = refused(request("expert-0", AssignmentStage.ASSIGNMENT_STAGE_PREPARE,
                Long.MIN_VALUE, 1));

        assertThat(errorInfos(e)).singleElement().satisfies(info -> {
            assertThat(info.getReason()).isEqualTo("EPOCH_NUMBER_REFUSED");
            assertThat(info.getMetadataMap()).containsEntry("epoch", "9223372036854775808")
                    .containsEntry("served_epoch", "0").containsEntry("prepared_epoch", "0");
        });
    }

    @Test
    void refusalsAboutTheInstance_carryNoErrorInfo() throws InvalidProtocolBufferException {
        servingFiveWithSevenPrepared();

        StatusRuntimeException otherInstance = refused(request("expert-1", AssignmentStage.ASSIGNMENT_STAGE_PREPARE,
                3, 1));
        StatusRuntimeException commitUnknown = refused(request("expert-0", AssignmentStage.ASSIGNMENT_STAGE_COMMIT,
                900));
        StatusRuntimeException abortServed = refused(request("expert-0", AssignmentStage.ASSIGNMENT_STAGE_ABORT, 5));

        assertThat(otherInstance.getStatus().getDescription()).startsWith("assignment is for instance \"expert-1\"");
        assertThat(errorInfos(otherInstance)).isEmpty();
        assertThat(errorInfos(commitUnknown)).isEmpty();
        assertThat(errorInfos(abortServed)).isEmpty();
    }
}
