package io.moemesh.expert.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moemesh.expert.assignment.Assignment;
import io.moemesh.expert.backend.CpuExpertBackend;
import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.support.BatchClient;
import io.moemesh.expert.support.Requests;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.LoadAssignmentRequest;
import io.moemesh.service.grpc.StatusMapping;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/**
 * A weights file deleted or truncated after the model was opened (shards are mapped on first use) is the server's
 * fault, not the caller's: the call or batch that needs an expert of it is INTERNAL with the generic description
 * (the server's path stays off the wire), counted, and logged at error with the details.
 */
class WeightsFileFaultTest {
    @TempDir
    Path dir;
    private ExpertModel model;
    private ServedInstance instance;
    private final ListAppender<ILoggingEvent> logged = new ListAppender<>();
    private final List<Logger> watched = List.of((Logger) LoggerFactory.getLogger(ExpertGrpcService.class),
            (Logger) LoggerFactory.getLogger(BatchStream.class));

    @BeforeEach
    void copyModel() throws IOException {
        Path tiny = TestModels.dir(TestModels.MIXTRAL); // 4 layers × 8 experts, hidden 64, one model.safetensors
        for (String f : List.of("config.json", "model.safetensors")) {
            Files.copy(tiny.resolve(f), dir.resolve(f));
        }
        model = ExpertModel.open(dir);
        logged.start();
        watched.forEach(l -> l.addAppender(logged));
    }

    @AfterEach
    void stop() throws InterruptedException {
        watched.forEach(l -> l.detachAppender(logged));
        if (instance != null) {
            instance.close();
        }
        model.close();
    }

    private String errorLogged() {
        return logged.list.stream().filter(e -> e.getLevel() == Level.ERROR)
                .map(e -> e.getFormattedMessage() + " " + (e.getThrowableProxy() == null ? ""
                        : e.getThrowableProxy().getMessage() + " " + (e.getThrowableProxy().getCause() == null ? ""
                                : e.getThrowableProxy().getCause().getMessage())))
                .findFirst().orElse("nothing logged at error");
    }

    @Test
    void loadAssignment_ofAnExpertWhoseWeightsFileWasDeleted_isInternal_withoutThePath_loggedAtError()
            throws Exception {
        Files.delete(dir.resolve("model.safetensors"));
        instance = new ServedInstance(model, new CpuExpertBackend(model), Assignment.empty());
        var stub = ExpertServiceGrpc.newBlockingStub(instance.channel).withDeadlineAfter(30, TimeUnit.SECONDS);
        LoadAssignmentRequest req = LoadAssignmentRequest.newBuilder().setInstanceId("expert-0").setEpoch(1)
                .addExperts(ExpertRef.newBuilder().setLayer(0).setExpert(0)).build();

        assertThatThrownBy(() -> stub.loadAssignment(req)).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INTERNAL);
            assertThat(e.getStatus().getDescription()).isEqualTo(StatusMapping.INTERNAL_DESCRIPTION)
                    .doesNotContain(dir.toString());
        });
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(instance.errors("INTERNAL")).isEqualTo(1));
        assertThat(instance.errors("INVALID_ARGUMENT")).isZero();
        assertThat(errorLogged()).contains("LoadAssignment failed", "layer 0 expert 0",
                dir.resolve("model.safetensors").toString());
        assertThat(instance.resident.residentExperts()).isEmpty();
    }

    @Test
    void expertBatch_needingAnExpertWhoseWeightsFileWasTruncated_isInternal_withoutThePath_andTheStreamGoesOn()
            throws Exception {
        try (FileChannel f = FileChannel.open(dir.resolve("model.safetensors"), StandardOpenOption.WRITE)) {
            f.truncate(100); // the header's length is still there, the header and the data are gone
        }
        instance = new ServedInstance(model, new CpuExpertBackend(model),
                Assignment.of(0, IntStream.range(0, 4 * 8).mapToObj(i -> new ExpertKey(i / 8, i % 8)).toList()));
        try (BatchClient stream = new BatchClient(instance.channel)) {
            for (int expert : new int[] {1, 2}) {
                ExpertBatchResponse r = stream.call(Requests.single(0, expert, 0, model.hiddenSize()).build());
                assertThat(Status.fromCodeValue(r.getStatus().getCode()).getCode()).as(r.getStatus().getMessage())
                        .isEqualTo(Status.Code.INTERNAL);
                assertThat(r.getStatus().getMessage()).isEqualTo(StatusMapping.INTERNAL_DESCRIPTION)
                        .doesNotContain(dir.toString());
                assertThat(r.hasOutputs()).isFalse();
            }
            assertThat(stream.isEnded()).isFalse();
        }
        assertThat(instance.errors("INTERNAL")).isEqualTo(2);
        assertThat(errorLogged()).contains("ExpertBatch", "layer 0 expert 1", "truncated or corrupt safetensors header");
    }
}
