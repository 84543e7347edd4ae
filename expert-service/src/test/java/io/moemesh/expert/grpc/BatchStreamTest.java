package io.moemesh.expert.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.expert.assignment.Assignment;
import io.moemesh.expert.assignment.AssignmentManager;
import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.batch.BatchProcessor;
import io.moemesh.expert.batch.LoadTracker;
import io.moemesh.expert.metrics.ExpertMetrics;
import io.moemesh.expert.residency.ResidentSet;
import io.moemesh.expert.support.Requests;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.service.grpc.OpenStreams;
import io.moemesh.service.grpc.TensorArrayPool;
import io.moemesh.service.grpc.TensorMessage;
import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.api.trace.propagation.W3CTraceContextPropagator;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.propagation.ContextPropagators;
import io.opentelemetry.sdk.OpenTelemetrySdk;
import io.opentelemetry.sdk.trace.ReadWriteSpan;
import io.opentelemetry.sdk.trace.ReadableSpan;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.opentelemetry.sdk.trace.SpanProcessor;
import io.opentelemetry.sdk.trace.data.SpanData;
import io.opentelemetry.sdk.trace.samplers.Sampler;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * One ExpertBatch stream driven directly, without a server: what it does with a message after it ended, and the
 * spans it records.
 */
class BatchStreamTest {
    private static ExpertModel model;

    /** Every compute waits for this: a batch taken stays in flight (and visible in the load) until the test ends. */
    private final CountDownLatch release = new CountDownLatch(1);
    private BatchProcessor processor;

    @BeforeAll
    static void open() {
        model = ExpertModel.open(TestModels.dir(TestModels.MIXTRAL)); // 4 layers × 8 experts, hidden 64
    }

    @AfterAll
    static void close() {
        model.close();
    }

    @AfterEach
    void tearDown() {
        release.countDown();
        if (processor != null) {
            processor.close();
        }
    }

    /** A stream over the test model, every compute held until the test ends; its load and open streams. */
    private record Opened(BatchStream stream, LoadTracker load, OpenStreams<BatchStream> streams) {
    }

    private Opened open(RecordingObserver out, OpenTelemetry otel) {
        HeldBackend held = new HeldBackend(new CountDownLatch(1), release);
        ResidentSet resident = new ResidentSet(Long.MAX_VALUE, held::load, model.config().numLayers());
        Assignment all = Assignment.of(0, IntStream.range(0, 4 * 8).mapToObj(i -> new ExpertKey(i / 8, i % 8))
                .toList());
        AssignmentManager assignments = new AssignmentManager(model, "expert-0", resident, all, Duration.ofSeconds(10),
                System::nanoTime);
        resident.preload(all.experts());
        LoadTracker load = new LoadTracker(System::nanoTime);
        processor = new BatchProcessor(model, held, resident, assignments, load, System::nanoTime, 1, 8);
        ExpertMetrics metrics = new ExpertMetrics(new SimpleMeterRegistry(), model.config().numLayers(), resident,
                assignments, load);
        OpenStreams<BatchStream> streams = new OpenStreams<>();
        Status shutdown = Status.UNAVAILABLE.withDescription("expert-service expert-0 shutting down");
        BatchStream stream = new BatchStream(out, processor, metrics, load, assignments::servingEpoch,
                model.hiddenSize(), 4, otel, null, streams, shutdown);
        return new Opened(stream, load, streams);
    }

    @Test
    void messageDeliveredAfterTheStopEndedTheStream_isDropped_notComputed_andItsArrayGoesBackToThePool() {
        RecordingObserver out = new RecordingObserver();
        Opened opened = open(out, OpenTelemetry.noop());
        BatchStream stream = opened.stream();
        LoadTracker load = opened.load();
        OpenStreams<BatchStream> streams = opened.streams();
        int hidden = model.hiddenSize();
        assertThat(streams.register(stream)).isTrue();
        stream.start();
        assertThat(out.requested).isEqualTo(4);
        // Idle at the stop: ended at once, with window credit still outstanding on the wire.
        streams.endAll(BatchStream::shutDown);
        assertThat(out.errors).singleElement().satisfies(e -> assertThat(Status.fromThrowable(e).getDescription())
                .isEqualTo("expert-service expert-0 shutting down"));

        // Other tests may have left arrays of this length idle in the shared pool, which keeps 8 at most: taken out,
        // so the one the stream gives back is kept and a second give of it is caught.
        for (int i = 0; i < 8; i++) {
            TensorArrayPool.shared().take(hidden);
        }
        float[] activations = new float[hidden];
        ExpertBatchRequest header = Requests.single(0, 1, 0, hidden).clearActivations().build();
        stream.onNext(new TensorMessage<>(header, true, DType.DTYPE_F32, new long[] {1, hidden}, 4L * hidden,
                activations, null));

        assertThat(load.inFlightBatches()).as("batches taken for computing").isZero();
        assertThat(out.replies).isEmpty();
        assertThat(out.errors).hasSize(1);
        assertThatThrownBy(() -> TensorArrayPool.shared().give(activations)).as("the array is idle in the pool")
                .isInstanceOf(IllegalStateException.class);
        assertThat(streams.size()).isZero();
    }

    @Test
    void batchWithAnEmptyTraceContext_recordsNoSpan_andOneWithATraceparent_recordsAChildOfIt() {
        List<SpanData> ended = new CopyOnWriteArrayList<>();
        // Every root span sampled: an untraced batch that started one would be recorded here.
        SdkTracerProvider tracing = SdkTracerProvider.builder().setSampler(Sampler.parentBased(Sampler.alwaysOn()))
                .addSpanProcessor(new SpanProcessor() {
                    @Override
                    public void onStart(Context parentContext, ReadWriteSpan span) {
                    }

                    @Override
                    public boolean isStartRequired() {
                        return false;
                    }

                    @Override
                    public void onEnd(ReadableSpan span) {
                        ended.add(span.toSpanData());
                    }

                    @Override
                    public boolean isEndRequired() {
                        return true;
                    }
                }).build();
        try (OpenTelemetrySdk otel = OpenTelemetrySdk.builder().setTracerProvider(tracing)
                .setPropagators(ContextPropagators.create(W3CTraceContextPropagator.getInstance())).build()) {
            RecordingObserver out = new RecordingObserver();
            BatchStream stream = open(out, otel).stream();
            int hidden = model.hiddenSize();
            // An output dtype the service refuses: answered at once, without a compute.
            ExpertBatchRequest untraced = Requests.single(0, 1, 0, hidden).clearActivations()
                    .setOutputDtype(DType.DTYPE_I32).build();
            stream.onNext(new TensorMessage<>(untraced, true, DType.DTYPE_F32, new long[] {1, hidden}, 4L * hidden,
                    new float[hidden], null));
            assertThat(out.replies).hasSize(1);
            assertThat(ended).as("spans of an untraced batch").isEmpty();

            String traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
            String parentSpanId = "00f067aa0ba902b7";
            ExpertBatchRequest traced = untraced.toBuilder()
                    .putTraceContext("traceparent", "00-" + traceId + "-" + parentSpanId + "-01").build();
            stream.onNext(new TensorMessage<>(traced, true, DType.DTYPE_F32, new long[] {1, hidden}, 4L * hidden,
                    new float[hidden], null));
            assertThat(out.replies).hasSize(2);
            assertThat(ended).singleElement().satisfies(span -> {
                assertThat(span.getName()).isEqualTo("moemesh.expert.batch");
                assertThat(span.getTraceId()).isEqualTo(traceId);
                assertThat(span.getParentSpanId()).isEqualTo(parentSpanId);
            });
        }
    }

    /** The server side of the call: what the stream sent, and the credit it asked for. */
    private static final class RecordingObserver extends ServerCallStreamObserver<TensorMessage<ExpertBatchResponse>> {
        final List<TensorMessage<ExpertBatchResponse>> replies = new CopyOnWriteArrayList<>();
        final List<Throwable> errors = new CopyOnWriteArrayList<>();
        int requested;

        @Override
        public void onNext(TensorMessage<ExpertBatchResponse> value) {
            replies.add(value);
        }

        @Override
        public void onError(Throwable t) {
            errors.add(t);
        }

        @Override
        public void onCompleted() {
        }

        @Override
        public boolean isCancelled() {
            return false;
        }

        @Override
        public void setOnCancelHandler(Runnable onCancelHandler) {
        }

        @Override
        public void setCompression(String compression) {
        }

        @Override
        public boolean isReady() {
            return true;
        }

        @Override
        public void setOnReadyHandler(Runnable onReadyHandler) {
        }

        @Override
        public void disableAutoInboundFlowControl() {
        }

        @Override
        public void disableAutoRequest() {
        }

        @Override
        public void request(int count) {
            requested += count;
        }

        @Override
        public void setMessageCompression(boolean enable) {
        }
    }
}
