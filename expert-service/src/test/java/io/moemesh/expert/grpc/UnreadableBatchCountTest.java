package io.moemesh.expert.grpc;

import static io.moemesh.service.testing.RawMessages.raw;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.CallOptions;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.StreamObserver;
import io.moemesh.expert.assignment.Assignment;
import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.backend.NoOpExpertBackend;
import io.moemesh.expert.support.BatchClient;
import io.moemesh.expert.support.Requests;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * moemesh_expert_errors_total counts failed ExpertBatch messages, also one that ends its stream unanswered because
 * it does not parse, each once; a stream ended by the service's stop fails no message and is not counted.
 */
class UnreadableBatchCountTest {
    private static final MethodDescriptor<byte[], byte[]> BATCH = raw(ExpertServiceGrpc.getExpertBatchMethod());
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
        instance = new ServedInstance(model, new NoOpExpertBackend(model.hiddenSize()),
                Assignment.of(0, IntStream.range(0, 4 * 8).mapToObj(i -> new ExpertKey(i / 8, i % 8)).toList()));
    }

    @AfterEach
    void stop() throws InterruptedException {
        instance.close();
    }

    @Test
    void expertBatch_bytesThatDoNotParse_endTheStream_andAreCountedOnceAsInvalidArgument() throws Exception {
        CompletableFuture<Status> end = new CompletableFuture<>();
        StreamObserver<byte[]> requests = ClientCalls.asyncBidiStreamingCall(instance.channel.newCall(BATCH,
                CallOptions.DEFAULT.withDeadlineAfter(30, TimeUnit.SECONDS)), new StreamObserver<>() {
                    @Override
                    public void onNext(byte[] value) {
                        end.complete(Status.INTERNAL.withDescription("a reply to bytes that do not parse"));
                    }

                    @Override
                    public void onError(Throwable t) {
                        end.complete(Status.fromThrowable(t));
                    }

                    @Override
                    public void onCompleted() {
                        end.complete(Status.OK);
                    }
                });
        requests.onNext(new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff});
        Status s = end.get(30, TimeUnit.SECONDS);
        assertThat(s.getCode()).as(String.valueOf(s)).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(s.getDescription()).contains("is not a valid");

        await().atMost(Duration.ofSeconds(10))
                .untilAsserted(() -> assertThat(instance.errors("INVALID_ARGUMENT")).isEqualTo(1));
    }

    @Test
    void expertBatch_badMessageAnsweredOnTheStream_isCountedOnce() throws Exception {
        try (BatchClient stream = new BatchClient(instance.channel)) {
            assertThat(stream.call(Requests.single(model.numLayers(), 0, 0, model.hiddenSize()).build())
                    .getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT.value());
            assertThat(stream.finish(Duration.ofSeconds(10))).isNull();
        }
        assertThat(instance.errors("INVALID_ARGUMENT")).isEqualTo(1);
    }

    @Test
    void expertBatch_streamEndedByTheServicesStop_isNotCounted() throws Exception {
        try (BatchClient stream = new BatchClient(instance.channel)) {
            assertThat(stream.call(Requests.single(0, 0, 0, model.hiddenSize()).build()).getStatus().getCode()).isZero();
            instance.service.batchStreams().endAll(BatchStream::shutDown);
            assertThat(Status.fromThrowable(stream.awaitEnd(Duration.ofSeconds(10))).getCode())
                    .isEqualTo(Status.Code.UNAVAILABLE);
        }
        assertThat(instance.registry.find("moemesh.expert.errors").counters()).isEmpty();
    }
}
