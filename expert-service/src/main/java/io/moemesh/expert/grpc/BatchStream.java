package io.moemesh.expert.grpc;

import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.moemesh.expert.batch.BatchProcessor;
import io.moemesh.expert.batch.BatchRequest;
import io.moemesh.expert.batch.BatchResult;
import io.moemesh.expert.batch.LoadTracker;
import io.moemesh.expert.metrics.ExpertMetrics;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.service.grpc.OpenStreams;
import io.moemesh.service.grpc.TensorArena;
import io.moemesh.service.grpc.TensorArrayPool;
import io.moemesh.service.grpc.TensorCodec;
import io.moemesh.service.grpc.TensorMessage;
import io.moemesh.service.grpc.TraceContexts;
import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Context;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One ExpertBatch stream. Every message is answered once, in completion order (the caller correlates by
 * batch_id); a bad message gets a reply with its status and the stream goes on. Flow control is manual: the
 * stream holds at most {@code window} unanswered messages, and takes the next one only while the reply side is
 * ready, so a slow reader or a burst cannot make the instance buffer without bound.
 *
 * <p>At the service's stop ({@link #shutDown}) the stream requests no further messages; those that arrived before
 * its last answer are still computed and answered, and once none is unanswered the stream ends with the shutdown
 * status (UNAVAILABLE "expert-service &lt;id&gt; shutting down"): an idle stream at once. A message requested before
 * the stop that arrives after that end is dropped, never computed (its arena slot, if any, is the caller's again
 * once the stream failed). A stream opened while the service stops is refused with that status. The caller fails
 * the calls it sent that were not answered with it, retryably, as for a lost instance.
 */
final class BatchStream implements StreamObserver<TensorMessage<ExpertBatchRequest>> {
    private static final Logger log = LoggerFactory.getLogger(BatchStream.class);

    private final ServerCallStreamObserver<TensorMessage<ExpertBatchResponse>> out;
    private final BatchProcessor processor;
    private final ExpertMetrics metrics;
    private final LoadTracker load;
    private final LongSupplier servingEpoch;
    private final int hidden;
    private final Object lock = new Object();
    private final Tracer tracer;
    private final TraceContexts traces;
    private int unanswered;
    /** Messages we may take but did not request yet because the reply side was not ready. */
    private int owed;
    private boolean halfClosed;
    private boolean finished;
    /** The service is stopping: no more messages are requested, and the stream ends once all taken are answered. */
    private boolean shuttingDown;
    /** The caller's shared-memory arena, mapped for this stream; null without one. */
    private final TensorArena arena;
    /** The service's open streams: this one is registered there until it finishes. */
    private final OpenStreams<BatchStream> streams;
    private final Status shutdownStatus;
    private final int window;

    BatchStream(ServerCallStreamObserver<TensorMessage<ExpertBatchResponse>> out, BatchProcessor processor, ExpertMetrics metrics,
                LoadTracker load, LongSupplier servingEpoch, int hidden, int window, OpenTelemetry otel,
                TensorArena arena, OpenStreams<BatchStream> streams, Status shutdownStatus) {
        this.arena = arena;
        this.streams = streams;
        this.shutdownStatus = shutdownStatus;
        this.tracer = otel.getTracer("moemesh-expert-service");
        this.traces = new TraceContexts(otel);
        this.out = out;
        this.processor = processor;
        this.metrics = metrics;
        this.load = load;
        this.servingEpoch = servingEpoch;
        this.hidden = hidden;
        out.disableAutoRequest();
        out.setOnReadyHandler(this::onReady);
        out.setOnCancelHandler(this::finish);
        load.streamOpened();
        this.window = window;
    }

    /** Takes the first {@code window} messages; called once the stream is registered to be ended at stop. */
    void start() {
        synchronized (lock) {
            if (!finished && !shuttingDown) {
                out.request(window);
            }
        }
    }

    /**
     * Refuses a stream opened while the service stops, instead of {@link #start}ing it (so no message was taken):
     * ended at once with the shutdown status.
     */
    void refuse() {
        synchronized (lock) {
            shuttingDown = true;
            endForShutdownLocked();
        }
    }

    /**
     * The service stops: request no further messages, answer those already taken, then end the stream with the
     * shutdown status (at once when none is unanswered). Without this an idle stream, which every gateway keeps
     * open, held the server's graceful stop for its whole shutdown grace.
     */
    void shutDown() {
        synchronized (lock) {
            shuttingDown = true;
            if (unanswered == 0) {
                endForShutdownLocked();
            }
        }
    }

    private void endForShutdownLocked() {
        if (!finished) {
            out.onError(shutdownStatus.asRuntimeException());
            finishLocked();
        }
    }

    @Override
    public void onNext(TensorMessage<ExpertBatchRequest> message) {
        long arrival = System.nanoTime();
        ExpertBatchRequest req = message.header();
        synchronized (lock) {
            if (finished) {
                // Requested before the stream ended and delivered after (the stop ended it at its last answer, or it
                // was cancelled): nobody reads an answer, and its arena slot is the caller's again, not to be written.
                // Its received floats go back to the pool; an arena region was never read.
                TensorArrayPool.shared().give(message.values());
                return;
            }
            unanswered++;
        }
        Span span = startSpan(req);
        BatchRequest request;
        TensorArena.Region region = message.region();
        try {
            request = ProtoMapping.toDomain(message.resolve("activations", arena), hidden);
        } catch (RuntimeException e) {
            answer(failure(req, e), span);
            return;
        }
        processor.submit(request, arrival, (result, error) -> {
            answer(result != null ? success(req, result, region) : failure(req, error), span);
            // Computed (or refused): the activations are read no more, and a failed batch's outputs were never sent.
            TensorArrayPool.shared().give(request.input().x());
            if (result == null) {
                TensorArrayPool.shared().give(request.out());
            }
        });
    }

    /**
     * The batch's span, a child of the caller's from the message's trace_context; a no-op span when that carries no
     * valid parent (empty, or no well-formed traceparent). expert.proto promises that an empty trace_context means
     * untraced, and a root span started here would be sampled at the configured ratio (application.yaml's
     * management.tracing.sampling.probability), each a trace of one span.
     */
    private Span startSpan(ExpertBatchRequest req) {
        Context parent = traces.extract(req.getTraceContextMap());
        if (!Span.fromContext(parent).getSpanContext().isValid()) {
            return Span.getInvalid();
        }
        return tracer.spanBuilder("moemesh.expert.batch").setSpanKind(SpanKind.SERVER).setParent(parent)
                .setAttribute("moemesh.layer", req.getLayer())
                .setAttribute("moemesh.tokens", req.getTokenExpertCountsCount()).startSpan();
    }

    /**
     * The outputs stay a float array until gRPC's framer drains the reply into its buffers (which then gives the
     * array back to the pool), or are copied into the caller's arena slot here (and the array given back at once).
     */
    private TensorMessage<ExpertBatchResponse> success(ExpertBatchRequest req, BatchResult r, TensorArena.Region region) {
        metrics.batchComputed(r.layer(), r.tokens(), r.queueNanos(), r.computeNanos());
        ExpertBatchResponse header = ExpertBatchResponse.newBuilder().setBatchId(req.getBatchId()).setLayer(req.getLayer())
                .setComputeMicros(r.computeNanos() / 1000).setQueueMicros(r.queueNanos() / 1000)
                .setServingEpoch(r.servingEpoch()).build();
        DType dtype = ProtoMapping.outputDtype(req);
        long bytes = (long) r.tokens() * hidden * TensorCodec.elementBytes(dtype);
        if (region != null && bytes <= arena.slotBytes()) {
            // The request came in a slot the caller holds until this reply: the outputs go back the same way.
            int n = r.tokens() * hidden;
            TensorArena.Region written = arena.write(arena.slotOf(region), r.out(), n, dtype);
            TensorArrayPool.shared().give(r.out());
            return TensorMessage.inArena(header, written, r.tokens(), hidden, dtype);
        }
        return TensorMessage.ofPooled(header, r.out(), r.tokens(), hidden, dtype);
    }

    private TensorMessage<ExpertBatchResponse> failure(ExpertBatchRequest req, Throwable error) {
        com.google.rpc.Status status = ProtoMapping.toRpcStatus(error);
        Status.Code code = Status.fromCodeValue(status.getCode()).getCode();
        metrics.error(code.name());
        if (code == Status.Code.INTERNAL) {
            log.error("ExpertBatch {} layer {} failed", Long.toUnsignedString(req.getBatchId()), req.getLayer(), error);
        }
        return TensorMessage.withoutTensor(ExpertBatchResponse.newBuilder().setBatchId(req.getBatchId())
                .setLayer(req.getLayer()).setStatus(status).setServingEpoch(servingEpoch.getAsLong()).build());
    }

    /** Called from worker threads: replies are serialised here (a StreamObserver is not thread-safe). */
    private void answer(TensorMessage<ExpertBatchResponse> response, Span span) {
        if (response.header().hasStatus()) {
            span.setStatus(StatusCode.ERROR, response.header().getStatus().getMessage());
        }
        span.end();
        synchronized (lock) {
            unanswered--;
            if (finished) {
                return;
            }
            out.onNext(response);
            if (halfClosed && unanswered == 0) {
                out.onCompleted();
                finishLocked();
            } else if (shuttingDown) {
                // No new message: the caller's next ones fail with the shutdown status and go elsewhere.
                if (unanswered == 0) {
                    endForShutdownLocked();
                }
            } else if (out.isReady()) {
                out.request(1);
            } else {
                owed++;
            }
        }
    }

    private void onReady() {
        synchronized (lock) {
            if (owed > 0 && !finished && !shuttingDown) {
                out.request(owed);
                owed = 0;
            }
        }
    }

    @Override
    public void onError(Throwable t) {
        finish();
    }

    @Override
    public void onCompleted() {
        synchronized (lock) {
            halfClosed = true;
            if (unanswered == 0 && !finished) {
                out.onCompleted();
                finishLocked();
            }
        }
    }

    private void finish() {
        synchronized (lock) {
            finishLocked();
        }
    }

    private void finishLocked() {
        if (!finished) {
            finished = true;
            load.streamClosed();
            streams.unregister(this);
        }
    }
}
