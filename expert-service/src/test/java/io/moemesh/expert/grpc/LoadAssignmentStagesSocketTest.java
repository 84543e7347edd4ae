package io.moemesh.expert.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import com.google.rpc.ErrorInfo;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moemesh.expert.ExpertServiceApplication;
import io.moemesh.expert.support.BatchClient;
import io.moemesh.expert.support.Requests;
import io.moemesh.expert.support.TestCertificates;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.expert.v1.AssignmentStage;
import io.moemesh.proto.expert.v1.DescribeInstanceRequest;
import io.moemesh.proto.expert.v1.DescribeInstanceResponse;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.LoadAssignmentRequest;
import io.moemesh.proto.expert.v1.LoadAssignmentResponse;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * The two-phase switch on a real expert-service over mutual TLS, as the router drives it: LoadAssignment PREPARE,
 * then COMMIT or ABORT (the stage field of expert.proto), with ExpertBatch requests at the old, prepared and new
 * epochs in between.
 */
@SpringBootTest(classes = ExpertServiceApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"moemesh.expert.grpc-port=0", "moemesh.expert.instance-id=expert-5",
            "moemesh.expert.drain-grace=1s"})
@DirtiesContext
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class LoadAssignmentStagesSocketTest {
    private static final int H = 64; // mixtral-tiny: 4 layers × 8 experts, hidden 64
    private static final Duration GRACE = Duration.ofSeconds(1);

    @Autowired
    GrpcServerLifecycle grpcServer;
    @LocalManagementPort
    int managementPort;
    private ManagedChannel channel;
    private ExpertServiceGrpc.ExpertServiceBlockingStub stub;

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry registry) {
        registry.add("moemesh.expert.model-dir", () -> TestModels.dir(TestModels.MIXTRAL).toString());
        TestCertificates.serve(registry, "expert-5");
    }

    @BeforeAll
    void open() {
        channel = TestCertificates.channel(grpcServer.port(), "placer");
        stub = ExpertServiceGrpc.newBlockingStub(channel).withDeadlineAfter(1, TimeUnit.MINUTES);
    }

    @AfterAll
    void close() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    private static ExpertRef ref(int layer, int expert) {
        return ExpertRef.newBuilder().setLayer(layer).setExpert(expert).build();
    }

    private LoadAssignmentResponse call(AssignmentStage stage, long epoch, ExpertRef... experts) {
        return stub.loadAssignment(LoadAssignmentRequest.newBuilder().setInstanceId("expert-5").setEpoch(epoch)
                .setStage(stage).addAllExperts(List.of(experts)).build());
    }

    private static Status.Code code(ExpertBatchResponse r) {
        return Status.fromCodeValue(r.getStatus().getCode()).getCode();
    }

    private String prometheus() throws Exception {
        try (HttpClient http = HttpClient.newHttpClient()) {
            return http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + managementPort
                    + "/actuator/prometheus")).build(), HttpResponse.BodyHandlers.ofString()).body();
        }
    }

    private DescribeInstanceResponse describe() {
        return stub.describeInstance(DescribeInstanceRequest.getDefaultInstance());
    }

    @Test
    void prepare_answersBothEpochs_abortKeepsTheServedOnePastTheGrace_commitSwitches() throws Exception {
        try (BatchClient stream = new BatchClient(channel)) {
            call(AssignmentStage.ASSIGNMENT_STAGE_UNSPECIFIED, 1, ref(0, 0), ref(0, 1));

            LoadAssignmentResponse prepared = call(AssignmentStage.ASSIGNMENT_STAGE_PREPARE, 2, ref(0, 1), ref(0, 2));
            assertThat(prepared.getEpoch()).isEqualTo(2);
            assertThat(prepared.getServingEpoch()).isEqualTo(1);
            assertThat(prepared.getPreparedEpoch()).isEqualTo(2);
            assertThat(prepared.getLoadedCount()).isEqualTo(2);
            assertThat(describe().getPreparedEpoch()).isEqualTo(2);
            assertThat(describe().getEpoch()).isEqualTo(1);
            assertThat(prometheus()).contains("moemesh_expert_epoch 1.0", "moemesh_expert_prepared_epoch 2.0");
            ExpertBatchResponse atPrepared = stream.call(Requests.single(0, 2, 2, H).build());
            assertThat(code(atPrepared)).as("the prepared epoch is answered at once").isEqualTo(Status.Code.OK);
            assertThat(atPrepared.getServingEpoch()).isEqualTo(1);
            assertThat(code(stream.call(Requests.single(0, 0, 1, H).build()))).isEqualTo(Status.Code.OK);
            assertThat(stream.call(Requests.single(0, 0, 2, H).build()).getStatus().getMessage())
                    .isEqualTo("layer 0 expert 0 is not held by expert-5 (epoch 2)");

            LoadAssignmentResponse aborted = call(AssignmentStage.ASSIGNMENT_STAGE_ABORT, 2);
            assertThat(aborted.getServingEpoch()).isEqualTo(1);
            assertThat(aborted.getPreparedEpoch()).isZero();
            assertThat(describe().getPreparedEpoch()).isZero();
            assertThat(describe().getResidentExpertsList()).containsExactly(ref(0, 0), ref(0, 1));
            ExpertBatchResponse atAborted = stream.call(Requests.single(0, 1, 2, H).build());
            assertThat(code(atAborted)).isEqualTo(Status.Code.FAILED_PRECONDITION);
            assertThat(atAborted.getStatus().getDetails(0).unpack(ErrorInfo.class).getReason())
                    .isEqualTo("EPOCH_NOT_LOADED");
            // The served epoch has no deadline: it is answered through twice the drain grace and on.
            await().during(GRACE.multipliedBy(2)).atMost(GRACE.multipliedBy(10)).until(() ->
                    code(stream.call(Requests.single(0, 0, 1, H).build())) == Status.Code.OK);

            call(AssignmentStage.ASSIGNMENT_STAGE_PREPARE, 3, ref(0, 3));
            LoadAssignmentResponse committed = call(AssignmentStage.ASSIGNMENT_STAGE_COMMIT, 3);
            assertThat(committed.getServingEpoch()).isEqualTo(3);
            assertThat(committed.getPreparedEpoch()).isZero();
            assertThat(code(stream.call(Requests.single(0, 3, 3, H).build()))).isEqualTo(Status.Code.OK);
            await().atMost(Duration.ofSeconds(20)).until(() ->
                    code(stream.call(Requests.single(0, 0, 1, H).build())) == Status.Code.FAILED_PRECONDITION);
            assertThat(stream.call(Requests.single(0, 0, 1, H).build()).getStatus().getMessage())
                    .isEqualTo("stale epoch 1, serving 3");
            await().atMost(Duration.ofSeconds(20)).until(() ->
                    describe().getResidentExpertsList().equals(List.of(ref(0, 3))));

            assertThat(call(AssignmentStage.ASSIGNMENT_STAGE_COMMIT, 3).getServingEpoch()).as("a repeat").isEqualTo(3);
            assertThatThrownBy(() -> call(AssignmentStage.ASSIGNMENT_STAGE_ABORT, 3))
                    .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
                        assertThat(e.getStatus().getDescription()).contains("cannot abort epoch 3: it is the served epoch");
                    });
            assertThat(call(AssignmentStage.ASSIGNMENT_STAGE_ABORT, 2).getServingEpoch()).as("unknown: a no-op")
                    .isEqualTo(3);
            assertThat(stream.isEnded()).isFalse();
        }
    }

    @ParameterizedTest(name = "{0} {1} with {2} experts")
    @CsvSource(delimiter = '|', value = {
            "2 | 900 | 0 | FAILED_PRECONDITION | cannot commit epoch 900: it is neither prepared nor served (serving epoch",
            "2 | 900 | 1 | INVALID_ARGUMENT    | experts: must be empty for ASSIGNMENT_STAGE_COMMIT (got 1)",
            "3 | 900 | 1 | INVALID_ARGUMENT    | experts: must be empty for ASSIGNMENT_STAGE_ABORT (got 1)",
            "9 | 900 | 0 | INVALID_ARGUMENT    | stage: unknown AssignmentStage value 9",
            "2 | 0   | 0 | INVALID_ARGUMENT    | assignment epoch must be >= 1, got 0",
    })
    void badStageCalls_areRefused_namingWhatIsWrong(int stage, long epoch, int experts, Status.Code code,
                                                    String message) {
        LoadAssignmentRequest.Builder req = LoadAssignmentRequest.newBuilder().setInstanceId("expert-5").setEpoch(epoch)
                .setStageValue(stage);
        for (int i = 0; i < experts; i++) {
            req.addExperts(ref(0, i));
        }
        long servedBefore = describe().getEpoch();
        assertThatThrownBy(() -> stub.loadAssignment(req.build()))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(code);
                    assertThat(e.getStatus().getDescription()).startsWith(message);
                });
        assertThat(describe().getEpoch()).isEqualTo(servedBefore);
    }

    @Test
    void commitForAnotherInstance_isFailedPrecondition() {
        assertThatThrownBy(() -> stub.loadAssignment(LoadAssignmentRequest.newBuilder().setInstanceId("expert-6")
                .setEpoch(1).setStage(AssignmentStage.ASSIGNMENT_STAGE_COMMIT).build()))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
                    assertThat(e.getStatus().getDescription()).contains("expert-6").contains("expert-5");
                });
    }
}
