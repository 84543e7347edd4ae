package io.moemesh.expert.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moemesh.expert.ExpertServiceApplication;
import io.moemesh.expert.support.BatchClient;
import io.moemesh.expert.support.Requests;
import io.moemesh.expert.support.TestCertificates;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.expert.v1.DescribeInstanceRequest;
import io.moemesh.proto.expert.v1.DescribeInstanceResponse;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.LoadAssignmentRequest;
import io.moemesh.proto.expert.v1.LoadAssignmentResponse;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/** An instance started without a placement: LoadAssignment (from the placer identity) gives it experts, epoch by epoch. */
@SpringBootTest(classes = ExpertServiceApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"moemesh.expert.grpc-port=0", "moemesh.expert.instance-id=expert-7",
            "moemesh.expert.drain-grace=3s"})
@DirtiesContext
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class LoadAssignmentSocketTest {
    private static final int H = 64; // mixtral-tiny: 4 layers × 8 experts, hidden 64, intermediate 96, f32
    private static final long EXPERT_BYTES = 3L * 64 * 96 * 4;

    @Autowired
    GrpcServerLifecycle grpcServer;
    private ManagedChannel channel;
    private ExpertServiceGrpc.ExpertServiceBlockingStub stub;

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry registry) {
        registry.add("moemesh.expert.model-dir", () -> TestModels.dir(TestModels.MIXTRAL).toString());
        TestCertificates.serve(registry, "expert-7");
    }

    @BeforeAll
    void open() {
        channel = TestCertificates.channel(grpcServer.port(), "placer");
        stub = ExpertServiceGrpc.newBlockingStub(channel);
    }

    @AfterAll
    void close() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    private static ExpertRef ref(int layer, int expert) {
        return ExpertRef.newBuilder().setLayer(layer).setExpert(expert).build();
    }

    private LoadAssignmentResponse assign(String instance, long epoch, ExpertRef... experts) {
        return stub.loadAssignment(LoadAssignmentRequest.newBuilder().setInstanceId(instance).setEpoch(epoch)
                .addAllExperts(List.of(experts)).build());
    }

    private static Status.Code code(ExpertBatchResponse r) {
        return Status.fromCodeValue(r.getStatus().getCode()).getCode();
    }

    private DescribeInstanceResponse describe() {
        return stub.describeInstance(DescribeInstanceRequest.getDefaultInstance());
    }

    @Test
    void loadAssignment_switchesEpochs_newServedAtOnce_previousDrainsForTheGrace_thenStaleAndDropped() {
        try (BatchClient stream = new BatchClient(channel)) {
            // No assignment yet: nothing is held.
            assertThat(describe().getEpoch()).isZero();
            ExpertBatchResponse none = stream.call(Requests.single(0, 0, 0, H).build());
            assertThat(code(none)).isEqualTo(Status.Code.FAILED_PRECONDITION);
            assertThat(none.getStatus().getMessage()).isEqualTo("layer 0 expert 0 is not held by expert-7 (epoch 0)");

            LoadAssignmentResponse first = assign("expert-7", 1, ref(0, 0), ref(0, 1), ref(1, 2));
            assertThat(first.getEpoch()).isEqualTo(1);
            assertThat(first.getLoadedCount()).isEqualTo(3);
            assertThat(first.getResidentBytes()).isEqualTo(3 * EXPERT_BYTES);
            ExpertBatchResponse atOne = stream.call(Requests.single(0, 0, 1, H).build());
            assertThat(code(atOne)).isEqualTo(Status.Code.OK);
            assertThat(atOne.getServingEpoch()).isEqualTo(1);

            assertThat(assign("expert-7", 2, ref(0, 1), ref(0, 3)).getEpoch()).isEqualTo(2);
            assertThat(code(stream.call(Requests.single(0, 3, 2, H).build()))).isEqualTo(Status.Code.OK);
            assertThat(stream.call(Requests.single(0, 0, 2, H).build()).getStatus().getMessage())
                    .isEqualTo("layer 0 expert 0 is not held by expert-7 (epoch 2)");
            ExpertBatchResponse draining = stream.call(Requests.single(0, 0, 1, H).build());
            assertThat(code(draining)).as("epoch 1 is served during the drain grace").isEqualTo(Status.Code.OK);
            assertThat(draining.getServingEpoch()).isEqualTo(2);

            await().atMost(Duration.ofSeconds(20)).until(() ->
                    code(stream.call(Requests.single(0, 0, 1, H).build())) == Status.Code.FAILED_PRECONDITION);
            assertThat(stream.call(Requests.single(0, 1, 1, H).build()).getStatus().getMessage())
                    .isEqualTo("stale epoch 1, serving 2");
            await().atMost(Duration.ofSeconds(20)).until(() ->
                    describe().getResidentExpertsList().equals(List.of(ref(0, 1), ref(0, 3))));
            DescribeInstanceResponse d = describe();
            assertThat(d.getEpoch()).isEqualTo(2);
            assertThat(d.getAssignedExpertsList()).containsExactly(ref(0, 1), ref(0, 3));
            assertThat(d.getResidentBytes()).isEqualTo(2 * EXPERT_BYTES);

            assertThat(assign("expert-7", 2, ref(0, 3), ref(0, 1)).getEpoch()).as("idempotent").isEqualTo(2);
            assertThatThrownBy(() -> assign("expert-7", 1, ref(0, 0)))
                    .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
                        assertThat(e.getStatus().getDescription()).contains("older than the served epoch 2");
                    });
            assertThat(stream.isEnded()).isFalse();
        }
    }

    @Test
    void loadAssignment_forAnotherInstance_isFailedPrecondition() {
        assertThatThrownBy(() -> assign("expert-8", 99, ref(0, 0)))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
                    assertThat(e.getStatus().getDescription()).contains("expert-8").contains("expert-7");
                });
    }

    @Test
    void loadAssignment_unknownLayerOrExpert_isInvalidArgument() {
        assertThatThrownBy(() -> assign("expert-7", 99, ref(0, 8)))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                    assertThat(e.getStatus().getDescription()).contains("layer 0 expert 8 does not exist");
                });
        assertThatThrownBy(() -> assign("expert-7", 99, ref(7, 0)))
                .isInstanceOfSatisfying(StatusRuntimeException.class,
                        e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT));
    }
}
