package io.moemesh.expert.grpc;

import static io.moemesh.service.testing.RawMessages.raw;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import io.grpc.CallOptions;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCalls;
import io.moemesh.expert.assignment.Assignment;
import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.backend.NoOpExpertBackend;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.LoadAssignmentRequest;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * moemesh_expert_errors_total counts failed control calls each once: one whose request does not parse (closed by
 * RequestParsingGuard before any handler runs) as well as one its handler refuses.
 */
class UnreadableControlCallCountTest {
    private static ExpertModel model;
    private ServedInstance instance;

    @BeforeAll
    static void open() {
        model = ExpertModel.open(TestModels.dir(TestModels.MIXTRAL)); // 4 layers × 8 experts, hidden 64
    }

    @AfterAll
    static void close() {
        model.close();
    }

    @BeforeEach
    void serve() throws Exception {
        instance = new ServedInstance(model, new NoOpExpertBackend(model.hiddenSize()), Assignment.of(0, List.of()));
    }

    @AfterEach
    void stop() throws InterruptedException {
        instance.close();
    }

    static Stream<MethodDescriptor<?, ?>> controlCalls() {
        return Stream.of(ExpertServiceGrpc.getPrefetchMethod(), ExpertServiceGrpc.getLoadAssignmentMethod(),
                ExpertServiceGrpc.getDescribeInstanceMethod());
    }

    @ParameterizedTest
    @MethodSource("controlCalls")
    void controlCall_bytesThatDoNotParse_areInvalidArgument_andCountedOnce(MethodDescriptor<?, ?> method) {
        StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class, () ->
                ClientCalls.blockingUnaryCall(instance.channel, raw(method),
                        CallOptions.DEFAULT.withDeadlineAfter(30, TimeUnit.SECONDS),
                        new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff}));

        assertThat(e.getStatus().getCode()).as(String.valueOf(e.getStatus())).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(e.getStatus().getDescription()).contains("is not a valid");
        // counted before the close that sends the client its status
        assertThat(instance.errors("INVALID_ARGUMENT")).isEqualTo(1);
        assertThat(instance.registry.find("moemesh.expert.errors").counters()).hasSize(1);
    }

    @Test
    void controlCall_refusedByItsHandler_isCountedOnce() {
        StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class, () ->
                ExpertServiceGrpc.newBlockingStub(instance.channel).withDeadlineAfter(30, TimeUnit.SECONDS)
                        .loadAssignment(LoadAssignmentRequest.newBuilder().setInstanceId("expert-0").setEpoch(99)
                                .addExperts(ExpertRef.newBuilder().setLayer(0).setExpert(8)).build()));

        assertThat(e.getStatus().getCode()).as(String.valueOf(e.getStatus())).isEqualTo(Status.Code.INVALID_ARGUMENT);
        // the handler counted it; the close that sent the status (counted first, were it counted twice) adds nothing
        assertThat(instance.errors("INVALID_ARGUMENT")).isEqualTo(1);
    }
}
